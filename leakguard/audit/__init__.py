"""The privacy audit of a trained generator: image sets and their cached embeddings (images.py,
store.py), exact nearest-identity search of generated faces against the training identities
(search.py), the rates, curves and intervals the audit reports (metrics.py), and which generated
images are faces at all with the leak rate among those (faces.py, detection.py)."""
