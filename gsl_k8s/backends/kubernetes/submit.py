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


def _poll(check, timeout: float, interval: float, what: str):
    """`check()` every `interval` s until it returns something other than None; TimeoutError
    naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (outcome := check()) is not None:
            return outcome
        time.sleep(interval)
    raise TimeoutError(what)


def delete_and_wait(api: CustomObjectsApi, namespace: str, name: str, timeout: float) -> None:
    """Delete the experiment (its Jobs go with it) and wait until it is gone."""

    def gone() -> bool | None:
        try:
            api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as err:
            if err.status == 404:
                return True
            raise
        return None

    try:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as err:
        if err.status == 404:
            return
        raise
    _poll(gone, timeout, 1, f"{name} still exists {timeout:.0f} s after its deletion")


def create(api: CustomObjectsApi, namespace: str, manifest: dict[str, Any]) -> None:
    """Create the experiment from its manifest."""
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)


def wait_for_outcome(
    api: CustomObjectsApi, namespace: str, name: str, timeout: float
) -> dict[str, Any]:
    """The experiment's status once its stage is Succeeded or Failed; TimeoutError before."""

    def outcome() -> dict[str, Any] | None:
        obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        status = obj.get("status") or {}
        return status if status.get("stage") in OUTCOMES else None

    return _poll(outcome, timeout, 2, f"{name} did not finish within {timeout:.0f} s")
