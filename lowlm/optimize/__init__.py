"""Smaller and faster versions of trained models: dynamic int8 quantization (``quantize``) and magnitude
pruning (``prune``). An optimized model is saved as an ordinary bundle whose ``bundle.json`` records
``optimization``; ``load_bundle`` reads it back into a model that serves through the same pyfunc."""
