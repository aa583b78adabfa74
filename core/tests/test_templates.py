"""Reading a template's custom the way a connector author expects it."""

from __future__ import annotations

from flyteidl.core import tasks_pb2

from core_connectors.templates import custom_dict


def test_custom_as_a_plain_dict_with_integral_floats_as_ints():
    template = tasks_pb2.TaskTemplate(type="x")
    template.custom.update({"max_tokens": 100, "temperature": 0.5, "nested": {"n": [1, 2.5]}, "name": "a"})
    before = template.SerializeToString()
    custom = custom_dict(template)
    assert custom == {"max_tokens": 100, "temperature": 0.5, "nested": {"n": [1, 2.5]}, "name": "a"}
    assert type(custom["max_tokens"]) is int and type(custom["nested"]["n"][0]) is int
    custom["name"] = "changed"
    assert template.SerializeToString() == before  # a copy: the template is never mutated


def test_empty_custom():
    assert custom_dict(tasks_pb2.TaskTemplate()) == {}
