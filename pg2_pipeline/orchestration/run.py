"""Materializing assets from outside the UI (the CLI and every DVC stage) in the project's
Dagster instance, so the UI shows every run whoever started it."""

from __future__ import annotations

import time

from dagster import AssetKey, DagsterInstance

# Dagster's console logger defaults to DEBUG (every step event); INFO keeps stage logs readable.
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def materialize_assets(names: list[str], started_by: str = "cli") -> bool:
    """Runs the whole-chain job restricted to ``names`` (with their checks) in the instance at
    ``$DAGSTER_HOME``. Prints what each asset made and the time taken; returns success."""
    from pg2_pipeline.definitions import defs, pipeline_job
    from pg2_pipeline.env import find_project_root
    from pg2_pipeline.report import asset_lines

    instance = DagsterInstance.get()
    job = defs.resolve_job_def(pipeline_job.name)
    start = time.perf_counter()
    print(f"==> materializing {', '.join(names)} (Dagster instance {instance.root_directory})", flush=True)
    result = job.execute_in_process(
        run_config=RUN_CONFIG,
        instance=instance,
        asset_selection=[AssetKey(n) for n in names],
        tags={"pg2/started_by": started_by},
        raise_on_error=False,
    )
    seconds = time.perf_counter() - start
    if not result.success:
        for event in result.all_events:
            if event.event_type_value == "STEP_FAILURE":
                error = event.event_specific_data.error
                print(f"error in {event.step_key}: {error.message.strip() if error else event.message}", flush=True)
        print(f"FAILED after {seconds:.1f} s (Dagster run {result.run_id})", flush=True)
        return False
    root = find_project_root()
    for name in names:
        print("\n".join(asset_lines(name, root)))
    print(f"    done in {seconds:.1f} s (Dagster run {result.run_id})", flush=True)
    return True
