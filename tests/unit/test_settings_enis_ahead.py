"""``warm_attached_enis`` (warm mode's ENIs held ahead) from the environment and from
the Helm chart's ``warm.attachedEnis`` to the planner's targets."""

from __future__ import annotations

import pytest

from tests.fixtures.helm import Helm, HelmFailed, build_helm
from tests.unit.test_helm_chart import config
from vpcnet.errors import ConfigError
from vpcnet.settings import Settings


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(build_helm(), tmp_path_factory.mktemp("helm-home"))


def test_the_default_holds_every_eni_and_a_count_or_zero_parses() -> None:
    assert Settings().warm_attached_enis == -1
    assert Settings.from_env({"VPCNET_WARM_ATTACHED_ENIS": "3"}).warm_attached_enis == 3
    assert Settings.from_env({"VPCNET_WARM_ATTACHED_ENIS": "0"}).warm_attached_enis == 0
    with pytest.raises(ConfigError, match="warm_attached_enis"):
        Settings.from_env({"VPCNET_WARM_ATTACHED_ENIS": "-2"})


def test_the_chart_value_reaches_the_configmap_and_the_settings(helm: Helm) -> None:
    assert config(helm.template())["VPCNET_WARM_ATTACHED_ENIS"] == "-1"
    data = config(helm.template({"warm": {"attachedEnis": 4}}))
    assert data["VPCNET_WARM_ATTACHED_ENIS"] == "4"
    assert Settings.from_env(data).warm_attached_enis == 4
    with pytest.raises(HelmFailed, match="attachedEnis"):
        helm.template({"warm": {"attachedEnis": -5}})
    with pytest.raises(HelmFailed, match="VPCNET_WARM_ATTACHED_ENIS"):
        helm.template({"env": {"VPCNET_WARM_ATTACHED_ENIS": "2"}})  # a headline value
