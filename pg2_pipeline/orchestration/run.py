"""Materializing assets from outside the UI (the CLI and every DVC stage) in the project's
Dagster instance, so the UI shows every run whoever started it."""

from __future__ import annotations

import time

from dagster import AssetKey, DagsterInstance

# Dagster's console logger defaults to DEBUG (every step event); INFO keeps stage logs readable.
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}

# Blocking checks that decide a promotion rather than the validity of the asset's files: when only
# these fail, the Dagster run is marked failed (nothing downstream may use the result) but the
# stage's outputs are complete, so the CLI and `dvc repro` go on. The champion gate withholds the
# @champion alias from a model that does not beat the copy baseline; the version stays registered.
PROMOTION_CHECKS = {"champion_gate"}


def materialize_assets(names: list[str], started_by: str = "cli", dead_runs: list[str] = ()) -> bool:
    """Runs the whole-chain job restricted to ``names`` (with their checks) in the instance at
    ``$DAGSTER_HOME``. Prints what each asset made and the time taken; returns success.
    ``dead_runs``: Dagster runs whose process died holding one of these assets' locks."""
    from pg2_pipeline.definitions import defs, pipeline_job
    from pg2_pipeline.env import find_project_root
    from pg2_pipeline.report import asset_lines

    instance = DagsterInstance.get()
    prepare_pools(instance)
    for run_id in dead_runs:
        end_dead_run(instance, run_id)
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
    failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
    step_errors = [e.event_specific_data.error for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    promotion_only = (
        bool(failed_checks)
        and all(e.check_name in PROMOTION_CHECKS for e in failed_checks)
        and all(err is not None and err.cls_name == "DagsterAssetCheckFailedError" for err in step_errors)
    )
    for evaluation in failed_checks:
        print(
            f"check {evaluation.asset_key.path[-1]}.{evaluation.check_name} did not pass: {evaluation.description}",
            flush=True,
        )
    if not result.success and promotion_only:
        print("    (a promotion gate, not a broken output: the stage's files are complete)", flush=True)
    elif not result.success:
        for event in result.all_events:
            if event.event_type_value == "STEP_FAILURE":
                error = event.event_specific_data.error
                print(f"error in {event.step_key}: {error.message.strip() if error else event.message}", flush=True)
                cause = error.cause if error else None
                while cause is not None:  # the user code's own exception, not only Dagster's wrapper
                    print(f"  caused by: {cause.message.strip()}", flush=True)
                    cause = cause.cause
        print(f"FAILED after {seconds:.1f} s (Dagster run {result.run_id})", flush=True)
        return False
    made = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    root = find_project_root()
    for name in names:
        if name in made or not promotion_only:
            print("\n".join(asset_lines(name, root)))
    print(f"    done in {seconds:.1f} s (Dagster run {result.run_id})", flush=True)
    skipped = [n for n in names if n not in made]
    if promotion_only and skipped and len(skipped) < len(names):
        # the failed gate stopped the run before these; `dvc repro` runs them as stages of their own
        print(f"==> {', '.join(skipped)}: skipped by the promotion gate's failed run; materializing in a new run")
        return materialize_assets(skipped, started_by=started_by)
    return True


def prepare_pools(instance: DagsterInstance) -> None:
    """Gives every asset's pool its limit (the instance's default, 1) unless it has one. The
    daemon does it only when it first sees a queued run of that pool, and not in time for that
    run: the first run from the UI would start beside a ``pg2 materialize`` of the same asset."""
    from pg2_pipeline.definitions import ASSETS

    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits or instance.global_op_concurrency_default_limit is None:
        return
    known = {pool.name for pool in storage.get_pool_limits()}
    for pool in sorted({a.op.pool for a in ASSETS if a.op.pool} - known):
        storage.initialize_concurrency_limit_to_default(pool)


def end_dead_run(instance: DagsterInstance, run_id: str) -> None:
    """Marks failed a run whose process died holding an asset's lock (``kill -9``, a crash) and
    frees its concurrency-pool slots. Dagster cannot see such a death for a run it did not launch
    (``pg2 materialize``): the run would stay "started" and, through its pools, keep every later
    run of its assets queued in the UI."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return
    if not run.is_finished:
        instance.report_run_failed(run, "its process died while writing (found by the next writer of its assets)")
        print(f"    marked Dagster run {run_id} failed: its process died while writing", flush=True)
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
