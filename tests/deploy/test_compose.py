"""deploy/compose.yaml is valid YAML and wires the three services together consistently.

Docker is not available where the tests run, so this checks structure, not a running stack.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from support.deploy_files import (
    COMPOSE_CONFIG,
    DEPLOY,
    ORTHANC_CONFIG,
    REPO,
    bind_mounts,
    compose,
    entrypoint_config_path,
    orthanc_config,
)

from monitor.settings import load_settings


def test_compose_has_the_node_the_pacs_and_the_ehr() -> None:
    document = compose()
    assert set(document["services"]) == {"qsm-monitor", "orthanc", "hapi"}
    for name, service in document["services"].items():
        assert "image" in service, f"{name} has no image"
        for target, source in bind_mounts(service).items():
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source} at {target}"
            else:
                assert source in document["volumes"], f"{name} uses undeclared volume {source}"


def test_node_service_builds_our_image_with_its_config_and_data_volume() -> None:
    node = compose()["services"]["qsm-monitor"]
    build = node["build"]
    assert (DEPLOY / build["context"]).resolve() == REPO
    assert (REPO / build["dockerfile"]).is_file()
    mounts = bind_mounts(node)
    config_target = str(entrypoint_config_path())
    assert (DEPLOY / mounts[config_target]).resolve() == COMPOSE_CONFIG
    settings = load_settings(COMPOSE_CONFIG)
    assert not mounts[str(settings.storage.data_dir)].startswith("."), "data must be a volume"
    assert f"{settings.node.port}:{settings.node.port}" in node["ports"]


def test_orthanc_mounts_its_config_and_the_routing_script_it_names() -> None:
    orthanc = compose()["services"]["orthanc"]
    mounts = bind_mounts(orthanc)
    assert (DEPLOY / mounts["/etc/orthanc/orthanc.json"]).resolve() == ORTHANC_CONFIG
    config = orthanc_config()
    (script,) = config["LuaScripts"]
    assert PurePosixPath(mounts[script]).name == "route-gre.lua"
    assert (DEPLOY / mounts[script]).is_file()
    assert f"{config['DicomPort']}:{config['DicomPort']}" in orthanc["ports"]
    assert "ORTHANC_ADMIN_PASSWORD" in orthanc["environment"]
    assert config["RegisteredUsers"]["admin"] == "${ORTHANC_ADMIN_PASSWORD}"
    route = config["DicomModalities"][config["QsmMonitorRouting"]["Modality"]]
    assert route["Host"] == "qsm-monitor", "Orthanc must reach the node by its service name"
