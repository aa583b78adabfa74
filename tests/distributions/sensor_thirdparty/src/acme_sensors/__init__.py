"""Serves the workflows' ``acme.sensors.MarkerSensor`` (a flytekit BaseSensor): done once a marker file exists."""

import os

from core_connectors_sensor import Sensor


class MarkerSensor(Sensor):
    flytekit_names = ("acme.sensors.MarkerSensor",)

    def poke(self, directory: str) -> bool:
        return os.path.exists(os.path.join(directory, self.config.get("marker", "_SUCCESS")))

    def awaiting(self, directory: str) -> str:
        return f"waiting for {self.config.get('marker', '_SUCCESS')} in {directory}"
