"""Where the connection comes from: a kubeconfig file, or the pod's service account."""

from __future__ import annotations

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from vpcnet.errors import ConfigError
from vpcnet.settings import Settings


def api_client_from_settings(settings: Settings, *, component: str) -> k8s.ApiClient:
    """Kubeconfig when ``settings.kubeconfig`` is set, else the pod's service account."""
    cfg = k8s.Configuration()
    try:
        if settings.kubeconfig:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=settings.kubeconfig, client_configuration=cfg, persist_config=False
            )
        else:
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError) as e:
        where = settings.kubeconfig or "in-cluster service account"
        raise ConfigError(f"cannot load Kubernetes configuration ({where}): {e}") from e
    api = k8s.ApiClient(cfg)
    api.user_agent = f"vpcnet/{component}"
    return api
