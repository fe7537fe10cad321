"""The one line `serve` prints when ready, with the warnings an operator must see."""

from dicom_node.service import startup_summary
from monitor.settings import DestinationSettings, Settings, load_settings


def test_a_bare_node_warns_that_nothing_leaves_and_anyone_may_send() -> None:
    line = startup_summary(Settings())
    assert "\n" not in line
    assert "AE QSMMON on 127.0.0.1:11112" in line and "engine local" in line
    assert "destinations: none" in line
    assert "no destinations configured: results stay in the data folder" in line
    assert "any calling AE title is accepted" in line


def test_a_configured_node_names_its_destinations_and_has_no_warnings() -> None:
    settings = load_settings(
        None,
        node={"allowed_calling_ae": ["SCANNER"], "port": 11113},
        destinations=[
            DestinationSettings(
                name="pacs", kind="dicom", host="127.0.0.1", port=4242, ae_title="PACS"
            ).model_dump(),
        ],
    )
    line = startup_summary(settings)
    assert "on 127.0.0.1:11113" in line and "destinations: pacs (dicom)" in line
    assert "warnings" not in line


def test_a_public_listener_without_tls_is_a_warning() -> None:
    line = startup_summary(load_settings(None, node={"host": "0.0.0.0"}))
    assert "listening on 0.0.0.0 without TLS" in line
