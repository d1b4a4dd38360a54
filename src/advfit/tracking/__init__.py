"""Everything W&B, one job per module:

- :mod:`~advfit.tracking.mode`: offline by default, online once logged in; credentials and
  reachability;
- :mod:`~advfit.tracking.runs`: the job types, the one ``epoch`` axis, opening and closing a run;
- :mod:`~advfit.tracking.training`: Lightning's logger for a training run (imports Lightning);
- :mod:`~advfit.tracking.replay`: the replay's per-epoch columns, images and headline numbers,
  and the run of ``evaluate.py``;
- :mod:`~advfit.tracking.report`: the report's run.

Only ``training`` imports Lightning, so the report and the dashboard start without it."""
