"""Annotation-tool adapters: one stateless clicks -> mask service, and the CVAT (nuclio interactor) and
Label Studio (ML backend) protocols over it."""
