"""Coded concepts of our DICOM outputs, in one place so the SR, the maps and the docs agree.

Standard codes where DICOM, SNOMED CT, NCIt or UCUM have one; the few product concepts without a
standard code (change since the previous study, the progression risk) use the private scheme
``99QSMMON``, declared in every object's Coding Scheme Identification Sequence.
"""

from __future__ import annotations

from highdicom.coding_schemes import CodingSchemeIdentificationItem
from highdicom.sr import CodedConcept

PRIVATE_SCHEME = "99QSMMON"
PRIVATE_SCHEME_ITEM = CodingSchemeIdentificationItem(
    designator=PRIVATE_SCHEME,
    name="qsm-monitor concepts",
    responsible_organization="qsm-monitor",
)

MAGNETIC_SUSCEPTIBILITY = CodedConcept("126396", "DCM", "Magnetic Susceptibility")
COMMENT = CodedConcept("121106", "DCM", "Comment")
PPB = CodedConcept("[ppb]", "UCUM", "ppb")
PPB_PER_YEAR = CodedConcept("[ppb]/a", "UCUM", "ppb per year")
PERCENT = CodedConcept("%", "UCUM", "percent")
MILLILITRE = CodedConcept("ml", "UCUM", "milliliter")
NO_UNITS = CodedConcept("1", "UCUM", "no units")

MEAN = CodedConcept("373098007", "SCT", "Mean")
MEDIAN = CodedConcept("373099004", "SCT", "Median")
STANDARD_DEVIATION = CodedConcept("386136009", "SCT", "Standard Deviation")
VOLUME = CodedConcept("118565006", "SCT", "Volume")
Z_SCORE = CodedConcept("121416", "DCM", "Z-Score of measurement")
PERCENTILE = CodedConcept("121415", "DCM", "Percentile Ranking of measurement")
NORMAL_RANGE_LOWER = CodedConcept("385524004", "SCT", "Normal Range Lower Limit")
NORMAL_RANGE_UPPER = CodedConcept("371933006", "SCT", "Normal Range Upper Limit")
NORMALITY: dict[str, CodedConcept] = {
    "L": CodedConcept("371880002", "SCT", "Abnormally Low"),
    "N": CodedConcept("17621005", "SCT", "Normal"),
    "H": CodedConcept("371879000", "SCT", "Abnormally High"),
}
YES = CodedConcept("373066001", "SCT", "Yes")
NO = CodedConcept("373067005", "SCT", "No")

REFERENCE_REGION = CodedConcept("C94970", "NCIt", "Reference Region")
REFERENCE_REGIONS: dict[str, CodedConcept] = {
    "whole_brain": CodedConcept("12738006", "SCT", "Brain"),
    "csf": CodedConcept("65216001", "SCT", "Cerebrospinal Fluid"),
}
IMAGING_PROCEDURE = CodedConcept("363679005", "SCT", "Imaging procedure")

FINDING_SITES: dict[str, CodedConcept] = {
    "thalamus": CodedConcept("42695009", "SCT", "Thalamus"),
    "caudate": CodedConcept("11000004", "SCT", "Caudate nucleus"),
    "putamen": CodedConcept("89278009", "SCT", "Putamen"),
    "globus_pallidus": CodedConcept("14738005", "SCT", "Globus pallidus"),
}
LATERALITY: dict[str, CodedConcept] = {
    "left": CodedConcept("7771000", "SCT", "Left"),
    "right": CodedConcept("24028007", "SCT", "Right"),
    "bilateral": CodedConcept("51440002", "SCT", "Right and left"),
}

CHANGE_SINCE_PREVIOUS = CodedConcept(
    "CHI-CHANGE", PRIVATE_SCHEME, "Susceptibility change since previous study"
)
PERCENT_CHANGE_SINCE_PREVIOUS = CodedConcept(
    "CHI-CHANGE-PCT", PRIVATE_SCHEME, "Susceptibility percent change since previous study"
)
ANNUAL_CHANGE = CodedConcept("CHI-RATE", PRIVATE_SCHEME, "Annualised susceptibility change")
RELIABLE_CHANGE = CodedConcept(
    "CHI-RELIABLE", PRIVATE_SCHEME, "Change exceeds test-retest variability"
)
PROGRESSION_RISK = CodedConcept("IRON-RISK", PRIVATE_SCHEME, "Brain iron progression risk")
RISK_LEVELS: dict[str, CodedConcept] = {
    "elevated": CodedConcept("RISK-ELEV", PRIVATE_SCHEME, "Elevated"),
    "not elevated": CodedConcept("RISK-NOT-ELEV", PRIVATE_SCHEME, "Not elevated"),
    "indeterminate": CodedConcept("RISK-INDET", PRIVATE_SCHEME, "Indeterminate"),
}
RISK_BASIS = CodedConcept("IRON-RISK-BASIS", PRIVATE_SCHEME, "Basis of risk assessment")
