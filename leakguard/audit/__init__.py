"""The privacy audit of a trained generator: image sets and their cached embeddings (images.py,
store.py), exact nearest-identity search of generated faces against the training identities
(search.py) and the rates, curves and intervals the audit reports (metrics.py)."""
