import acme_sdk_that_is_not_installed  # noqa: F401

from core_connectors_sensor import Sensor


class BrokenSensor(Sensor):
    flytekit_names = ("acme.sensors.BrokenSensor",)
