"""Packaging past one machine: Kubernetes manifests rendered from the settings
(:mod:`aimass.deploy.kubernetes`, ``aimass kubernetes``). How to run on each target: docs/DEPLOY.md."""
