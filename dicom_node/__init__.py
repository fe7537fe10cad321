"""DICOM adapter and service layer of qsm-monitor, one subpackage per stage of the data flow.

    receive -> assemble -> queue -> outputs -> deliver -> release -> priors -> process
    -> service -> web

`receive` takes instances off the network into the spool and catalogue; `assemble` turns a
study's files into `monitor.types.Acquisition`s; `queue` holds jobs, leases and results;
`outputs` builds and writes the DICOM and FHIR objects of a result; `deliver` sends them
through the outbox; `release` holds results for review before delivery; `priors` fetches a
patient's earlier exams from the PACS; `process` runs the pipeline and drives outputs and
outbox (it is the orchestrator, so it sits below what it drives); `service` runs everything
as a node and `web` is its console. `demo/` and `synthetic/` (data generators for the demo
and the tests) sit beside the stages and no stage imports them; `cli.py` composes everything
into the `qsm-monitor` command. Small shared leaves live here at the top: `db`, `errors`,
`files`, `geometry`, `logs`, `sop_classes`, `tcp`. `tests/architecture` keeps these rules.
It imports `monitor`; `monitor` never imports `dicom_node`.
"""
