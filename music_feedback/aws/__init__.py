"""The AWS adapter set: its settings, the resources it wires, and the checks that run before a day starts."""
