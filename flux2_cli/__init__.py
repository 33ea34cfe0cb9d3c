"""flux2: generate images with FLUX.2 through hosted APIs."""

__version__ = "0.1.0"
