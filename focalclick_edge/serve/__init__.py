"""`focalclick-edge serve`: an HTTP API and a click-to-segment web page over the per-click runtime.

Needs the ``[serve]`` extra (FastAPI, uvicorn, prometheus_client, python-multipart, pycocotools, Pillow).
"""
