"""The MLflow pyfunc adapter: the only MLflow code in lowlm."""
