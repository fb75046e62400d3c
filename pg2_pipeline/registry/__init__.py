"""The MLflow Model Registry side: logging the two-stage generator as a pyfunc model (weights
in safetensors, code shipped as source: nothing is unpickled on load), registering it, and the
``champion`` alias gate."""
