"""Tests of the deploy artifacts: image, compose stack, Kubernetes manifests, rules, dashboard."""
