"""The HTTP face of the station; the only package that wires everything together."""
