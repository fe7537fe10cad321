"""The one typed settings object: a TOML file, overridden by ``QSM_MONITOR_*`` variables.

Nested values are overridden with a double underscore, e.g. ``QSM_MONITOR_NODE__PORT=11113``.
Nothing else in the code base reads ``os.environ`` for configuration.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from monitor.errors import MonitorError


class ConfigError(MonitorError, ValueError):
    """The configuration file or an override is invalid; the message says which value."""


class SettingsSection(BaseModel):
    """A settings table: a key it does not define is an error, never silently ignored (a
    misspelt `allowed_calling_aes` would otherwise switch the AE allow-list off)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ReconSettings(SettingsSection):
    """Reconstruction choices; defaults are the measured best (docs/reconstruction.md)."""

    unwrap: Literal["laplacian", "romeo"] = "romeo"
    background: Literal["vsharp", "pdf", "lbv"] = "lbv"
    inversion: Literal["tkd", "tv_admm"] = "tv_admm"
    reference: Literal["whole_brain", "csf"] = "whole_brain"
    mask_threshold_fraction: float = Field(0.0, ge=0.0, le=1.0)
    """0 selects an automatic (Otsu) threshold on the magnitude."""
    mask_erode_mm: float = Field(2.0, ge=0.0)
    phase_quality_mask: bool = True
    vsharp_radii_mm: list[float] = Field(default_factory=lambda: [8.0, 6.0, 4.0, 3.0])
    vsharp_threshold: float = Field(0.02, gt=0.0, lt=1.0)
    pdf_iterations: int = Field(100, ge=1)
    lbv_tolerance: float = Field(1e-5, gt=0.0, lt=1.0)
    lbv_max_iterations: int = Field(2000, ge=1)
    lbv_erode_mm: float = Field(2.0, ge=0.0)
    tkd_threshold: float = Field(0.19, gt=0.0, lt=1.0)
    tv_lambda: float = Field(2e-4, gt=0.0)
    tv_rho: float = Field(0.1, gt=0.0)
    tv_iterations: int = Field(10, ge=1)
    tv_relaxation: float = Field(1.5, gt=0.0, lt=2.0)
    """ADMM over-relaxation, 1 for plain ADMM: 1.5 with 10 iterations matched plain ADMM's 15
    on the ROI errors of 7 phantom subjects and 8 varied heads (docs/reconstruction.md)."""
    magnitude_edge_weighting: bool = True
    compilation_cache_dir: Path | None = None
    """Persistent JAX compilation cache; default is per user, ``$XDG_CACHE_HOME/qsm-monitor/jax``
    (else ``~/.cache/qsm-monitor/jax``), so runs from any folder share it."""


class TLSSettings(SettingsSection):
    """DICOM TLS on the listener port (PEM files); off by default because most sites use VPNs."""

    enabled: bool = False
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None
    """Set: peers must present a certificate signed by (or equal to) one in this PEM file."""

    @model_validator(mode="after")
    def _enabled_needs_cert_and_key(self) -> TLSSettings:
        if self.enabled and (self.cert_file is None or self.key_file is None):
            raise ValueError("TLS enabled needs both cert_file and key_file")
        return self


class NodeSettings(SettingsSection):
    ae_title: str = Field("QSMMON", min_length=1, max_length=16)
    host: str = "127.0.0.1"
    port: int = Field(11112, ge=1, le=65535)
    allowed_calling_ae: list[str] = Field(default_factory=list)
    """Absent or empty: accept any calling AE title."""
    calling_ae_addresses: dict[str, list[str]] = Field(default_factory=dict)
    """Optional per calling AE: source IP addresses or networks (CIDR) it may connect from."""
    stable_after_s: float = Field(30.0, gt=0.0)
    max_associations: int = Field(10, ge=1)
    max_associations_per_address: int = Field(5, ge=1)
    """Open associations (and not yet associated connections) one address may hold."""
    require_called_ae: bool = True
    """Refuse associations addressed to another AE title than `ae_title` (a misrouted sender
    finds out at once instead of storing into the wrong node)."""
    network_timeout_s: float = Field(60.0, gt=0.0)
    acse_timeout_s: float = Field(10.0, gt=0.0)
    """Also how long a connection may stay silent before its A-ASSOCIATE-RQ (DICOM's ARTIM)."""
    dimse_timeout_s: float = Field(60.0, gt=0.0)
    tls: TLSSettings = Field(default_factory=TLSSettings)


class StorageSettings(SettingsSection):
    data_dir: Path = Path("qsm-monitor-data")
    database_url: str | None = None
    """Empty: SQLite inside data_dir. A PostgreSQL URL lets several nodes share the queue."""
    min_free_mb: float = Field(1000.0, ge=0.0)
    """`status` is unhealthy below this much free space where data_dir lives."""


DestinationKind = Literal["dicom", "fhir", "folder", "webhook"]

DICOM_OUTPUTS = (
    "sr",
    "qsm_parametric_map",
    "qsm_mr_series",
    "key_image_segmentation",
    "trend_plot",
    "report_page",
    "report_pdf",
)
"""Record outputs that are DICOM objects (a Part 10 file or a folder of them)."""
OUTPUT_NAMES = frozenset(
    {
        *DICOM_OUTPUTS,
        "key_image_segmentation_png",
        "trend_plot_png",
        "report_page_png",
        "report_page_pdf",
        "fhir_bundle",
        "alert",
        "chi_ppm",
        "mask",
        "qc",
    }
)
"""Every name the pipeline may list in ``ProcessingRecord.outputs`` (pipeline and emit step)."""
DEFAULT_OUTPUTS: dict[str, tuple[str, ...]] = {
    "dicom": DICOM_OUTPUTS,
    "fhir": ("fhir_bundle",),
    "folder": (*DICOM_OUTPUTS, "fhir_bundle"),
    "webhook": ("alert",),
}
"""What each kind of destination receives unless its ``outputs`` says otherwise."""
ALLOWED_OUTPUTS: dict[str, frozenset[str]] = {
    "dicom": frozenset(DICOM_OUTPUTS),
    "fhir": frozenset({"fhir_bundle"}),
    "folder": OUTPUT_NAMES,
    "webhook": frozenset({"alert"}),
}


class DestinationAuthSettings(SettingsSection):
    """HTTP authorisation for `fhir` and `webhook` destinations: a static bearer token, or
    SMART Backend Services (client-credentials grant with a signed JWT; `fhir` only)."""

    bearer_token: SecretStr | None = None
    token_url: str | None = None
    """SMART token endpoint; set together with client_id and private_key_file."""
    client_id: str | None = None
    private_key_file: Path | None = None
    """PEM private key whose public half the FHIR server knows (JWKS)."""
    key_id: str | None = None
    algorithm: Literal["RS384", "ES384"] = "RS384"
    scope: str | None = None
    """None: create and search on the resource types the Bundle holds (monitor.fhir.smart)."""

    @model_validator(mode="after")
    def _one_complete_method(self) -> DestinationAuthSettings:
        smart = (self.token_url, self.client_id, self.private_key_file)
        if any(smart) and not all(smart):
            raise ValueError("SMART auth needs token_url, client_id and private_key_file")
        if all(smart) and self.bearer_token is not None:
            raise ValueError("choose either bearer_token or SMART auth, not both")
        return self

    @property
    def smart(self) -> bool:
        return self.token_url is not None


class DestinationSettings(SettingsSection):
    """One place results go; `outputs` (record output names) defaults per kind."""

    name: str = Field(min_length=1, max_length=64)
    kind: DestinationKind
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    ae_title: str | None = Field(None, min_length=1, max_length=16)
    base_url: str | None = None
    """FHIR: the server's base URL (the transaction Bundle is POSTed there)."""
    url: str | None = None
    """Webhook: the URL the alert JSON is POSTed to."""
    path: Path | None = None
    """Folder: files go to ``<path>/<study ref>/<acquisition ref>/``."""
    auth: DestinationAuthSettings = Field(default_factory=DestinationAuthSettings)
    timeout_s: float = Field(30.0, gt=0.0)
    """HTTP request timeout (fhir, webhook); DICOM uses ``node.network_timeout_s``."""
    ca_file: Path | None = None
    """HTTPS (fhir, webhook): PEM bundle of the hospital's own CA; None uses the system's."""
    outputs: list[str] | None = None
    """Which record outputs go here; None: `DEFAULT_OUTPUTS` for the kind."""

    @model_validator(mode="after")
    def _complete_for_kind(self) -> DestinationSettings:
        needed = {
            "dicom": ("host", "port", "ae_title"),
            "fhir": ("base_url",),
            "folder": ("path",),
            "webhook": ("url",),
        }[self.kind]
        missing = [field for field in needed if getattr(self, field) is None]
        if missing:
            raise ValueError(f"{self.kind} destination {self.name!r} needs {', '.join(missing)}")
        wrong = sorted(set(self.outputs or ()) - ALLOWED_OUTPUTS[self.kind])
        if wrong:
            raise ValueError(f"{self.kind} destination {self.name!r} cannot take {wrong}")
        if self.auth.smart and self.kind != "fhir":
            raise ValueError(f"SMART auth is for fhir destinations, not {self.kind}")
        return self

    @property
    def routed_outputs(self) -> frozenset[str]:
        return frozenset(DEFAULT_OUTPUTS[self.kind] if self.outputs is None else self.outputs)


class JobsSettings(SettingsSection):
    """Processing queue: worker processes, leases and retries (dicom_node.queue.jobs/worker)."""

    workers: int = Field(1, ge=1)
    lease_s: float = Field(300.0, gt=0.0)
    """A job whose worker stops renewing its lease for this long is taken by another worker."""
    max_attempts: int = Field(3, ge=1)
    backoff_s: float = Field(30.0, ge=0.0)
    """Delay before the first retry; doubles with every further attempt."""
    poll_interval_s: float = Field(1.0, gt=0.0)


class ComputeSettings(SettingsSection):
    """Where the heavy stage (reconstruction, segmentation, measurement) runs.

    ``local`` runs it inside the worker process, as always; ``ray`` submits it as a Ray task
    (dicom_node.process.compute). The database stays the system of record either way: jobs,
    leases, results and the outbox do not move into Ray.
    """

    engine: Literal["local", "ray"] = "local"
    address: str = "auto"
    """Ray cluster to join: ``auto`` (a local ``ray start``), ``ray://host:10001`` (Ray
    Client) or ``host:6379`` (the head's GCS)."""
    num_cpus: float = Field(1.0, gt=0.0)
    """CPUs one task reserves on its Ray worker."""
    num_gpus: float = Field(0.0, ge=0.0)
    """GPUs one task reserves (fractions share a GPU); 0 runs on CPU workers."""
    max_in_flight: int = Field(2, ge=1)
    """Tasks one node keeps submitted at a time (`qsm-monitor backfill`)."""
    resources: dict[str, float] = Field(default_factory=dict)
    """Custom Ray resources one task needs, e.g. ``{"qsm_gpu_pool": 1}`` to pin tasks to
    the workers started with that resource."""


class OutboxSettings(SettingsSection):
    """Deliveries to destinations: retried with exponential backoff (dicom_node.deliver.outbox)."""

    max_attempts: int = Field(8, ge=1)
    """After this many failed attempts a delivery is dead-lettered (`qsm-monitor resend`)."""
    backoff_s: float = Field(30.0, ge=0.0)
    give_up_after_h: float = Field(72.0, gt=0.0)
    """A delivery still failing this long after it was queued is dead-lettered, whatever
    its attempt count."""
    lease_s: float = Field(300.0, gt=0.0)
    poll_interval_s: float = Field(1.0, gt=0.0)


class SegmentationSettings(SettingsSection):
    """Deep grey matter segmentation and ROI measurement (docs/segmentation.md)."""

    method: Literal["atlas", "external"] = "atlas"
    """"atlas": register the built-in template; "external": `external_path` on the same frame."""
    geometry_correction: bool = True
    """Take off each structure's reconstruction error in this acquisition's geometry, measured
    by reconstructing the registered template's susceptibility model the same way (atlas
    method, whole-brain reference; docs/segmentation.md, "Geometry correction")."""
    external_path: Path | None = None
    """Label NIfTI or DICOM SEG for "external" (`qsm-monitor process --segmentation FILE`)."""
    use_received_segmentation: bool = True
    """Measure on a DICOM SEG that comes with the study (same frame of reference, deep grey
    matter segments) instead of the atlas: sent to the node, or among `process`'s files."""
    probability_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    """Minimum atlas probability for a voxel to take its most probable structure."""
    registration_voxel_mm: float = Field(2.0, ge=1.0, le=4.0)
    bspline_mesh_mm: float = Field(20.0, ge=8.0)
    use_chi_for_registration: bool = True
    """Refine around the deep grey matter on the susceptibility map, where iron outlines it."""
    border_refinement_mm: float = Field(4.0, ge=0.0, le=10.0)
    """Label borders within this distance follow the susceptibility contrast inside the atlas
    prior (monitor.segment.border); 0 keeps the registered atlas borders."""
    roi_erode_voxels: int = Field(1, ge=0, le=3)
    """In-plane erosion of each structure before statistics (partial-volume rim)."""
    external_labels: dict[str, list[int]] = Field(
        default_factory=lambda: {
            "thalamus_left": [10],
            "thalamus_right": [49],
            "caudate_left": [11],
            "caudate_right": [50],
            "putamen_left": [12],
            "putamen_right": [51],
            "globus_pallidus_left": [13],
            "globus_pallidus_right": [52],
            "lateral_ventricle_left": [4],
            "lateral_ventricle_right": [43],
        }
    )
    """Structure name -> label values in the external map; default FreeSurfer/FastSurfer aseg."""
    min_similarity_nmi: float = Field(1.10, ge=1.0, le=2.0)
    """Normalised mutual information of the registered image (GRE magnitude or T1) and the
    warped template, over the brain and an 8 mm margin, below this: registration failed."""
    min_t1_to_gre_nmi: float = Field(1.05, ge=1.0, le=2.0)
    """A T1 aligned to the GRE less similar than this is not used (GRE-only path instead)."""
    prior_support_probability: float = Field(0.05, gt=0.0, lt=1.0)
    """Refined labels stay near where the prior registration gives the structure this
    probability (see `refinement_reach_mm`)."""
    refinement_reach_mm: float = Field(6.0, ge=0.0, le=20.0)
    """How far beyond its prior support refinement may carry a label: covers the linear
    prior's own error of a few mm, not a move onto a neighbouring nucleus (>= 10 mm)."""
    max_side_volume_ratio: float = Field(1.6, gt=1.0)
    """Left and right of a structure differing more than this withholds both sides. 1.6, not
    1.5: the DICOM phantom of tests/e2e/test_tracking_from_dicom.py gave a left caudate of 2.97 ml
    against 4.50 ml (1.52x; under-segmented, an open registration issue) whose change was
    still measured within 3 ppb; the rule is for gross failures (thalamus 14-42 ml)."""
    expected_volume_ratio: tuple[float, float] = (0.5, 1.7)
    """Labelled volume over the atlas volume the linear registration predicts: outside this
    range the structure is withheld (a local deformation ran away or the slab cuts it)."""
    min_brain_overlap_dice: float = Field(0.85, ge=0.0, le=1.0)
    """Dice of the subject's brain mask and the registered template brain (good registrations
    of simulated heads: 0.96-0.98; a head turned 90 degrees: 0.81)."""
    min_coverage_fraction: float = Field(0.9, ge=0.0, le=1.0)
    max_scale_deviation: float = Field(0.3, gt=0.0, lt=1.0)
    volume_ranges_ml: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {
            "thalamus": (4.0, 13.0),
            "caudate": (1.5, 7.0),
            "putamen": (2.5, 9.0),
            "globus_pallidus": (0.7, 3.5),
        }
    )
    """Plausible volume per side (ml); see monitor.segment.qc for the sources."""


class OutputsSettings(SettingsSection):
    """DICOM objects written for each processed study (docs/dicom-outputs.md)."""

    qsm_maps: list[Literal["parametric_map", "mr_derived"]] = Field(
        default_factory=lambda: ["parametric_map", "mr_derived"]
    )
    """Parametric Map (float, exact ppb) and/or an MR series with integer pixels rescaled to ppb
    for viewers that cannot show parametric maps."""
    series_number_base: int = Field(9900, ge=1, le=2**31 - 10)
    """SR = base, parametric map +1, MR derived +2, segmentation key image +3, trend plot +4,
    SEG +5, report page (Secondary Capture) +6, report page (Encapsulated PDF) +7."""
    display_window_ppb: tuple[float, float] = (-100.0, 200.0)
    """Initial viewer window (low, high) of the QSM series; deep grey matter iron fits inside."""

    @model_validator(mode="after")
    def _window_is_increasing(self) -> OutputsSettings:
        if self.display_window_ppb[1] <= self.display_window_ppb[0]:
            raise ValueError("display_window_ppb must be (low, high) with high > low")
        return self


class NormsSettings(SettingsSection):
    """Which normative model scores measurements (docs/norms.md)."""

    model_path: Path | None = None
    """A site model from `qsm-monitor norms fit`; None uses the shipped literature default."""


MIN_RETEST_SD_PPB = 0.1
"""The values' reported precision: a smaller scan-rescan SD would call every rounding step a
change (and a site estimate of 0 means identical repeats, i.e. the same scan counted twice)."""
RetestSdPpb = Annotated[float, Field(ge=MIN_RETEST_SD_PPB, le=50.0, strict=True)]
"""A scan-rescan SD in ppb: a number (not text or true/false), finite, at least
`MIN_RETEST_SD_PPB` (0.0024 would be ppm where ppb is meant) and at most 50 ppb (beyond
that no change of deep grey matter iron could ever be told from noise)."""


class RiskRuleSettings(SettingsSection):
    """One risk rule: a structure whose value is beyond ``z_threshold`` in ``direction``, or
    whose trend or step over the comparable visits goes that way beyond the limit a stable
    person crosses with probability ``change_alpha`` per visit, flags risk (docs/norms.md)."""

    structure: Literal["thalamus", "caudate", "putamen", "globus_pallidus"]
    direction: Literal["low", "high"]
    z_threshold: float
    """Negative for ``low``, positive for ``high``: a ``low`` rule at +3 would flag nearly
    everyone (z <= 3), so a sign against the direction is refused, not obeyed."""
    change_alpha: float = Field(0.02, gt=0.0, lt=0.5)
    """This rule's share of the per-visit false-alarm budget for its change test."""

    @model_validator(mode="after")
    def _threshold_points_the_rule_s_way(self) -> RiskRuleSettings:
        sign_ok = self.z_threshold < 0 if self.direction == "low" else self.z_threshold > 0
        if not sign_ok:
            wanted = "negative" if self.direction == "low" else "positive"
            raise ValueError(
                f"the {self.structure} rule's direction is {self.direction!r}, so its "
                f"z_threshold must be {wanted} (got {self.z_threshold:g})"
            )
        return self


class RiskSettings(SettingsSection):
    """Risk rules and reliable change (docs/norms.md); defaults follow the seed study."""

    rules: list[RiskRuleSettings] = Field(
        default_factory=lambda: [
            RiskRuleSettings(
                structure="thalamus", direction="low", z_threshold=-3.0, change_alpha=0.03
            ),
            RiskRuleSettings(
                structure="globus_pallidus", direction="high", z_threshold=3.0, change_alpha=0.01
            ),
        ],
        min_length=1,
    )
    """At least one (without rules every visit would read "not elevated", which no rule
    judged). Defaults keep a stable person's per-visit false-alarm rate near 4.3 % for all rules
    together (z 0.3 %, thalamic change 3 %, pallidal change 1 %); docs/norms.md has the table."""
    retest_sd_ppb: dict[str, RetestSdPpb] = Field(
        default_factory=lambda: {
            "thalamus": 2.4,
            "caudate": 2.4,
            "putamen": 2.4,
            "globus_pallidus": 2.4,
        }
    )
    """Scan-rescan SD per structure (ppb) of both sides' mean; default: mean within-site SDw
    of deep grey matter at 3 T, 2.36 ppb (docs/norms.md). Override from local repeat scans."""
    side_retest_sd_ppb: dict[str, RetestSdPpb] = Field(default_factory=dict)
    """Scan-rescan SD of one side's mean (ppb), for the per-side change fields; a structure
    not given gets sqrt(2) x its `retest_sd_ppb`. One side has half the voxels of both, so
    with independent errors on the two sides its SD is sqrt(2) x the bilateral one (shared
    errors would give less): judging a side against the bilateral SD makes a stable person's
    side show "reliable change" about three times too often (docs/norms.md)."""
    reliable_change_factor: float = Field(1.96 * 2**0.5, gt=0.0)
    """A change is reliable when |change| > factor * retest SD (1.96 * sqrt(2): 95 %, 2 scans).
    Descriptive (the record's reliable_change fields); the risk rules use the trend test."""

    @model_validator(mode="after")
    def _retest_sd_for_every_structure(self) -> RiskSettings:
        """Change is computed for every reported structure, so each needs its own noise level;
        a structure this version does not report is a typo, refused like an unknown key."""
        structures = get_args(RiskRuleSettings.model_fields["structure"].annotation)
        for name, table in (
            ("retest_sd_ppb", self.retest_sd_ppb),
            ("side_retest_sd_ppb", self.side_retest_sd_ppb),
        ):
            unknown = sorted(set(table) - set(structures))
            if unknown:
                raise ValueError(f"{name} has unknown structures {unknown}; known: {structures}")
        missing = [s for s in structures if s not in self.retest_sd_ppb]
        if missing:
            raise ValueError(f"retest_sd_ppb needs a positive value for {', '.join(missing)}")
        return self

    def side_retest_sd(self, structure: str) -> float:
        """The scan-rescan SD one side's change of `structure` is judged against (ppb)."""
        return self.side_retest_sd_ppb.get(structure, 2**0.5 * self.retest_sd_ppb[structure])


class TrackingSettings(SettingsSection):
    """Patient history: who is the same patient, which visits compare (docs/tracking.md)."""

    identifier_rule: Literal["exact", "strip", "strip_upper"] = "strip"
    """How Patient ID and issuer are normalised before matching: "strip" removes surrounding
    spaces (DICOM pads values), "strip_upper" also ignores letter case."""
    replace_reportable: bool = False
    """Let a result with nothing reportable replace a visit's stored reportable values. Off:
    such a re-run is refused and the earlier values kept (`process`/`reprocess --force`
    turn it on for one run)."""
    issuer_required: bool = False
    """True: a visit without Issuer of Patient ID is held for review instead of tracked."""
    default_issuer: str = ""
    """Issuer assumed when a visit has none (a single-domain site can leave it empty)."""
    field_strength_tolerance_t: float = Field(0.2, ge=0.0)
    """Same nominal field strength: Siemens "3 T" systems report 2.89 T, others 3.0 T."""
    echo_time_tolerance_ms: float = Field(0.5, ge=0.0)
    voxel_tolerance_mm: float = Field(0.1, ge=0.0)


class FhirSettings(SettingsSection):
    """How FHIR resources name the patient and the study (monitor.fhir, docs/fhir.md)."""

    patient_identifier_system: str = "https://qsm-monitor.org/fhir/sid/dicom-patient-id"
    """The EHR's identifier system for the DICOM Patient ID (set the site's MRN system URI)."""
    create_patient: bool = True
    """True: conditionally create the Patient; False: reference an existing one by identifier."""
    create_imaging_study: bool = True
    """True: conditionally create the ImagingStudy; False: logical reference by Study UID."""
    timezone: str | None = None
    """IANA zone of the scanners' clock (DICOM times are naive); None reports the date only."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from exc
        return value


class PriorsSettings(SettingsSection):
    """Day-one history: fetch a patient's earlier exams from the PACS (docs/priors.md)."""

    enabled: bool = False
    """True: a processed visit without a comparable prior makes the node query `source`."""
    source: str | None = None
    """Name of a `dicom` destination whose AE also answers C-FIND and C-MOVE or C-GET."""
    lookback_years: float = Field(10.0, gt=0.0)
    """Only studies this many years before today are asked for (`--since` overrides)."""
    max_studies: int = Field(5, ge=1)
    """At most this many earlier studies (the newest) are retrieved per fetch."""
    retrieve: Literal["move", "get"] = "move"
    """C-MOVE to our own AE title (the PACS must know it) or C-GET on the query association."""
    interval_days: float = Field(30.0, ge=0.0)
    """A patient's priors are fetched automatically at most once in this many days."""
    modality: str = "MR"
    scanning_sequence: str | None = "GR"
    """Series whose ScanningSequence the PACS returns must be exactly this (GR\\IR is not)."""
    min_instances: int = Field(8, ge=1)
    """Series with fewer instances (when the PACS counts them) are no multi-echo volume."""
    exclude_image_types: list[str] = Field(default_factory=lambda: ["DERIVED"])
    """Series whose ImageType holds one of these are skipped (our own QSM maps, MIPs)."""
    max_attempts: int = Field(5, ge=1)
    backoff_s: float = Field(60.0, ge=0.0)
    """Retry delay after a failed fetch, doubling per attempt (PACS down, partial retrieve)."""
    timeout_s: float = Field(60.0, gt=0.0)
    poll_interval_s: float = Field(2.0, gt=0.0)


class ReleaseSettings(SettingsSection):
    """A human check before results leave the node (docs/web-console.md)."""

    require_review: bool = False
    """True: nothing goes to PACS, EHR or webhook until a reviewer approves the visit."""


class WebSettings(SettingsSection):
    """The web console `serve` runs beside the DICOM node (docs/web-console.md)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    secure_cookies: bool = True
    """Session cookies only over HTTPS (browsers treat http://localhost as secure too);
    turn off only behind a TLS-terminating proxy that forwards plain HTTP on loopback."""
    session_hours: float = Field(8.0, gt=0.0)
    """A session expires this long after login."""
    login_attempts: int = Field(5, ge=1)
    """Failed logins allowed per user name and client address within `login_window_s`."""
    login_window_s: float = Field(300.0, gt=0.0)
    trusted_user_header: str | None = None
    """Set (e.g. "X-Remote-User"): an authenticating reverse proxy names the user in this
    header and local passwords are not asked; the user must still exist here (for the role).
    Only safe when the console listens on loopback behind that proxy."""
    refresh_s: int = Field(10, ge=2)
    """The node page reloads itself this often."""


class Settings(BaseSettings):
    """Everything configurable, in one object passed down explicitly."""

    model_config = SettingsConfigDict(
        env_prefix="QSM_MONITOR_", env_nested_delimiter="__", extra="forbid"
    )

    node: NodeSettings = Field(default_factory=NodeSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    recon: ReconSettings = Field(default_factory=ReconSettings)
    destinations: list[DestinationSettings] = Field(default_factory=list)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    compute: ComputeSettings = Field(default_factory=ComputeSettings)
    segmentation: SegmentationSettings = Field(default_factory=SegmentationSettings)
    norms: NormsSettings = Field(default_factory=NormsSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    outputs: OutputsSettings = Field(default_factory=OutputsSettings)
    fhir: FhirSettings = Field(default_factory=FhirSettings)
    priors: PriorsSettings = Field(default_factory=PriorsSettings)
    release: ReleaseSettings = Field(default_factory=ReleaseSettings)
    web: WebSettings = Field(default_factory=WebSettings)

    def with_external_segmentation(self, path: Path) -> Settings:
        """A copy that measures on `path` (label NIfTI or DICOM SEG) instead of the atlas."""
        external = {"method": "external", "external_path": path}
        segmentation = self.segmentation.model_copy(update=external)
        return self.model_copy(update={"segmentation": segmentation})

    def with_forced_replacement(self) -> Settings:
        """A copy whose results may replace reportable visits with unreportable ones."""
        tracking = self.tracking.model_copy(update={"replace_reportable": True})
        return self.model_copy(update={"tracking": tracking})

    @field_validator("destinations")
    @classmethod
    def _unique_destination_names(
        cls, destinations: list[DestinationSettings]
    ) -> list[DestinationSettings]:
        """Outbox rows refer to destinations by name, so two with one name would share rows."""
        names = [d.name for d in destinations]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"destination names must be unique: {duplicated}")
        return destinations

    @model_validator(mode="after")
    def _priors_source_is_a_pacs(self) -> Settings:
        """The prior fetch needs a DICOM peer to query; say so at start-up, not at 3 a.m."""
        wanted = self.priors.enabled or self.priors.source is not None
        if wanted and self.prior_source() is None:
            raise ValueError("priors.source must name a destination of kind dicom")
        return self

    def prior_source(self) -> DestinationSettings | None:
        """The `dicom` destination `[priors] source` names, or None."""
        return next(
            (d for d in self.destinations if d.name == self.priors.source and d.kind == "dicom"),
            None,
        )

    @classmethod
    def settings_customise_sources(  # noqa: PLR0913 - signature fixed by pydantic-settings
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment variables override the file (passed as init arguments), not the reverse."""
        return (env_settings, init_settings)


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (if any); environment variables take precedence over the file."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"configuration file not found: {path}") from exc
        except IsADirectoryError as exc:
            raise ConfigError(f"configuration file {path} is a folder, not a file") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not UTF-8 text") from exc
        except OSError as exc:
            raise ConfigError(f"configuration file {path} cannot be read: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc
    data.update(overrides)
    _check_environment_sections(os.environ)
    try:
        return Settings(**data)
    except SettingsError as exc:  # a list or table in the environment that is not JSON
        raise ConfigError(
            f"{exc}: in an environment variable a list or table must be JSON, e.g. "
            '{"thalamus": 3.0} or ["SCANNER1"]'
        ) from exc
    except ValidationError as exc:
        errors = exc.errors()
        # An unknown key first: a misspelt key (`type` for `kind`) also makes the real one
        # "missing", and naming the typo is what helps.
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        where = ".".join(str(p) for p in first["loc"]) + _environment_source(first["loc"])
        if first["type"] == "extra_forbidden":
            raise ConfigError(f"unknown setting {where}{_nearest_hint(first['loc'])}") from exc
        raise ConfigError(f"invalid configuration value {where}: {first['msg']}") from exc


ENV_PREFIX = "QSM_MONITOR_"


def _check_environment_sections(environ: Mapping[str, str]) -> None:
    """pydantic-settings skips variables naming no section (`QSM_MONITOR_NOD__PORT`); a typo
    in a deployment's environment must fail as loudly as one in the file."""
    for name in environ:
        if not name.upper().startswith(ENV_PREFIX):
            continue
        section = name[len(ENV_PREFIX) :].split("__")[0].lower()
        if section not in Settings.model_fields:
            hint = _nearest_hint((section,))
            raise ConfigError(f"unknown setting in environment variable {name}{hint}")


def _environment_source(location: Sequence[str | int]) -> str:
    """ " (environment variable X)" when the faulty key came from the environment, so the
    user does not search the file for a value it does not hold."""
    name = ENV_PREFIX + "__".join(str(part) for part in location).upper()
    matches = [key for key in os.environ if key.upper() == name]
    return f" (environment variable {matches[0]})" if matches else ""


def _nearest_hint(location: Sequence[str | int]) -> str:
    """ "; did you mean X?" for the closest valid key at `location`, or nothing."""
    model: type[BaseModel] | None = Settings
    for part in location[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(str(part))
        model = _model_of(field.annotation) if field is not None else None
    if model is None:
        return ""
    close = difflib.get_close_matches(str(location[-1]), list(model.model_fields), n=1)
    return f"; did you mean {'.'.join([*map(str, location[:-1]), close[0]])}?" if close else ""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings table type inside an annotation such as `list[DestinationSettings]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for arg in get_args(annotation) if (m := _model_of(arg)) is not None), None)
