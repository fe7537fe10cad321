"""Study Root C-FIND: a patient's earlier studies, then the series in them worth retrieving.

The PACS matches what it can (Patient ID, Issuer, study date range, Modality); the series
filter (ScanningSequence, instance count, ImageType) is applied here to whatever the PACS
returns, and skipped for an attribute it does not return. Series assembly does the final
check on the retrieved files, so a false positive costs a transfer, never a wrong result.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
)

from dicom_node.priors.association import failure_reason, final_status, source_association
from dicom_node.priors.errors import PriorsError
from monitor.settings import DestinationSettings, PriorsSettings


@dataclass(frozen=True)
class PriorQuery:
    """Whose exams, from when: dates are DICOM DA strings (YYYYMMDD), `until` inclusive."""

    patient_id: str
    issuer: str
    since: str
    until: str = ""


@dataclass(frozen=True)
class PriorSeries:
    """One series the PACS holds that passes the filter."""

    study_uid: str
    series_uid: str
    study_date: str
    instances: int | None


def find_prior_series(
    query: PriorQuery, source: DestinationSettings, calling_ae: str, settings: PriorsSettings
) -> list[PriorSeries]:
    """Matching series of the patient's studies in the date range, newest study first."""
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    with source_association(ae, source, settings.timeout_s) as assoc:
        studies = _find(assoc, _study_keys(query), "study query")
        studies = [s for s in studies if _same_patient(s, query)]
        studies.sort(key=lambda s: str(s.get("StudyDate", "")), reverse=True)
        found = []
        for study in studies:
            for series in _find(assoc, _series_keys(study, settings), "series query"):
                if _wanted(series, settings):
                    found.append(_prior(study, series))
    return found


def _find(assoc: object, keys: Dataset, what: str) -> list[Dataset]:
    responses = assoc.send_c_find(keys, StudyRootQueryRetrieveInformationModelFind)  # type: ignore[attr-defined]
    status, identifiers = final_status(responses, what)
    if status.Status != 0x0000:
        raise PriorsError(failure_reason(status, what))
    return identifiers


def _study_keys(query: PriorQuery) -> Dataset:
    keys = Dataset()
    keys.QueryRetrieveLevel = "STUDY"
    keys.PatientID = query.patient_id
    keys.IssuerOfPatientID = query.issuer
    keys.StudyInstanceUID = ""
    keys.StudyDate = f"{query.since}-{query.until}"
    return keys


def _same_patient(study: Dataset, query: PriorQuery) -> bool:
    """Guard against a PACS that matched loosely (wildcards, ignored issuer)."""
    if str(study.get("PatientID", "")).strip() != query.patient_id.strip():
        return False
    issuer = str(study.get("IssuerOfPatientID", "")).strip()
    return not issuer or issuer == query.issuer.strip()


def _series_keys(study: Dataset, settings: PriorsSettings) -> Dataset:
    keys = Dataset()
    keys.QueryRetrieveLevel = "SERIES"
    keys.StudyInstanceUID = study.StudyInstanceUID
    keys.SeriesInstanceUID = ""
    keys.Modality = settings.modality
    keys.ScanningSequence = ""
    keys.ImageType = ""
    keys.NumberOfSeriesRelatedInstances = ""
    return keys


def _values(ds: Dataset, keyword: str) -> list[str]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, str) else list(value)  # CS: str or MultiValue
    return [str(v).strip().upper() for v in items]


def _instances(ds: Dataset) -> int | None:
    value = ds.get("NumberOfSeriesRelatedInstances")
    return int(value) if value not in (None, "") else None


def _wanted(series: Dataset, settings: PriorsSettings) -> bool:
    """The series filter; an attribute the PACS did not return does not reject."""
    modality = str(series.get("Modality", "")).strip().upper()
    if modality and modality != settings.modality.upper():
        return False
    sequence = _values(series, "ScanningSequence")
    if settings.scanning_sequence and sequence and sequence != [settings.scanning_sequence.upper()]:
        return False
    instances = _instances(series)
    if instances is not None and instances < settings.min_instances:
        return False
    excluded = {t.upper() for t in settings.exclude_image_types}
    return not excluded & set(_values(series, "ImageType"))


def _prior(study: Dataset, series: Dataset) -> PriorSeries:
    return PriorSeries(
        study_uid=str(study.StudyInstanceUID),
        series_uid=str(series.SeriesInstanceUID),
        study_date=str(study.get("StudyDate", "")),
        instances=_instances(series),
    )
