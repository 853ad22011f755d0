"""`gsl submit`: create a GSLExperiment from its YAML and, if asked, wait for its outcome.

Used by the chart's `helm test` pod (the operator image has no kubectl); works in a pod
(its ServiceAccount) or with a kubeconfig.
"""

from __future__ import annotations

import time
from typing import Any

import kubernetes
from kubernetes.client import ApiException, CustomObjectsApi

from gsl_k8s.backends.kubernetes.crd import GROUP, PLURAL, VERSION

OUTCOMES = ("Succeeded", "Failed")


def experiments_api() -> CustomObjectsApi:
    """The API as this pod's ServiceAccount, or as the kubeconfig's user outside a pod."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return CustomObjectsApi()


def delete_and_wait(api: CustomObjectsApi, namespace: str, name: str, timeout: float) -> None:
    """Delete the experiment (its Jobs go with it) and wait until it is gone."""
    try:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as err:
        if err.status == 404:
            return
        raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as err:
            if err.status == 404:
                return
            raise
        time.sleep(1)
    raise TimeoutError(f"{name} still exists {timeout:.0f} s after its deletion")


def create(api: CustomObjectsApi, namespace: str, manifest: dict[str, Any]) -> None:
    """Create the experiment from its manifest."""
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)


def wait_for_outcome(
    api: CustomObjectsApi, namespace: str, name: str, timeout: float
) -> dict[str, Any]:
    """The experiment's status once its stage is Succeeded or Failed; TimeoutError before."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        status = obj.get("status") or {}
        if status.get("stage") in OUTCOMES:
            return status
        time.sleep(2)
    raise TimeoutError(f"{name} did not finish within {timeout:.0f} s")
