"""The Pod Security Standards' "restricted" profile (which includes "baseline"), checked on a
pod spec, for Kubernetes versions without Pod Security admission (1.20 has none).

Each rule is the profile's, as documented at
https://kubernetes.io/docs/concepts/security/pod-security-standards/ (policy version
"latest"). `violations` returns one line per broken rule, naming the field.
"""

from __future__ import annotations

from typing import Any

SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
RESTRICTED_VOLUME_TYPES = {
    *("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral"),
    *("persistentVolumeClaim", "projected", "secret"),
}
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def _containers(pod: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(path, container) for containers, init containers and ephemeral containers."""
    return [
        (f"{kind}[{c.get('name', i)}]", c)
        for kind in ("containers", "initContainers", "ephemeralContainers")
        for i, c in enumerate(pod.get(kind) or [])
    ]


def _contexts(pod: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(path, securityContext) of the pod and of every container."""
    contexts = [("spec.securityContext", pod.get("securityContext") or {})]
    contexts += [
        (f"{p}.securityContext", c.get("securityContext") or {}) for p, c in _containers(pod)
    ]
    return contexts


def violations(pod: dict[str, Any], annotations: dict[str, str] | None = None) -> list[str]:
    """What in the pod spec (`spec` of a Pod, or a template's) breaks the restricted
    profile; `annotations` are the pod's (AppArmor's older form)."""
    found: list[str] = []
    pod_context = pod.get("securityContext") or {}
    containers = _containers(pod)

    # Baseline.
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            found.append(f"host namespaces: spec.{field} is true")
    for path, context in _contexts(pod):
        if (context.get("windowsOptions") or {}).get("hostProcess"):
            found.append(f"HostProcess: {path}.windowsOptions.hostProcess is true")
        selinux = context.get("seLinuxOptions") or {}
        if selinux.get("type", "") not in SELINUX_TYPES:
            found.append(f"SELinux: {path}.seLinuxOptions.type is {selinux['type']}")
        for key in ("user", "role"):
            if selinux.get(key):
                found.append(f"SELinux: {path}.seLinuxOptions.{key} is set")
        apparmor = (context.get("appArmorProfile") or {}).get("type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            found.append(f"AppArmor: {path}.appArmorProfile.type is {apparmor}")
        seccomp = (context.get("seccompProfile") or {}).get("type")
        if seccomp not in (None, "RuntimeDefault", "Localhost"):
            found.append(f"seccomp: {path}.seccompProfile.type is {seccomp}")
        if context.get("runAsNonRoot") is False:
            found.append(f"non-root: {path}.runAsNonRoot is false")
        if context.get("runAsUser") == 0:
            found.append(f"non-root user: {path}.runAsUser is 0")
    for name, value in (annotations or {}).items():
        if name.startswith(APPARMOR_ANNOTATION) and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            found.append(f"AppArmor: annotation {name} is {value}")
    for sysctl in pod_context.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"sysctls: {sysctl.get('name')} is not a safe sysctl")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            found.append(f"hostPath volumes: volume {volume['name']} is a hostPath")
        elif not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"volume types: volume {volume['name']} is a {', '.join(sorted(kinds))}")
    for path, container in containers:
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            found.append(f"privileged: {path}.securityContext.privileged is true")
        if context.get("procMount", "Default") != "Default":
            found.append(f"/proc mount: {path}.securityContext.procMount is {context['procMount']}")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                found.append(f"host ports: {path} uses hostPort {port['hostPort']}")
        # Restricted (what follows is stricter than baseline's rules on the same fields).
        capabilities = context.get("capabilities") or {}
        added = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            found.append(f"capabilities: {path} adds {', '.join(sorted(added))}")
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"capabilities: {path} does not drop ALL")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"privilege escalation: {path}.allowPrivilegeEscalation is not false")
        if pod_context.get("runAsNonRoot") is not True and context.get("runAsNonRoot") is not True:
            found.append(f"non-root: runAsNonRoot is true neither for the pod nor for {path}")
        pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
        seccomp = (context.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"seccomp: {path} has no RuntimeDefault or Localhost profile")
    return found
