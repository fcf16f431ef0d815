"""The image's runtime config: the app's ``[config]`` settings, and of the
environment (base, env_file, ``[config] env``, a process's) what the policy
keeps; what it drops goes in the report and is masked in the history."""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import InvalidInputError
from ...model.image import Image
from ...model.mutate import ConfigChanges
from ..envfile import read_env_file
from ..policy import EnvDecision
from ..report import Report
from ..rootfs import process_env
from ..spec import AppSpec
from .api import ExportPlan


def check_allow_env(names: Sequence[str]) -> None:
    """``--allow-env`` names variables: exit 2 for anything else."""
    for name in names:
        if not name or "=" in name:
            raise InvalidInputError(f"--allow-env takes a variable NAME, not {name!r}")


def app_environment(spec: AppSpec, env_from_pid: int | None
                    ) -> tuple[list[tuple[str, str, str]], list[EnvDecision]]:
    """The app's own environment as (name, value, origin), later entries winning: the
    process's (``--env-from-pid``), the env_file's, ``[config] env``; and what was dropped
    while the process's was read."""
    env_layers: list[tuple[str, str, str]] = []
    env_dropped: list[EnvDecision] = []
    if env_from_pid is not None:
        captured = process_env(env_from_pid)
        env_layers += captured.env
        env_dropped = captured.dropped
    if spec.config.env_file_path is not None:
        env_file = read_env_file(spec.config.env_file_path, spec.config.env_file or "")
        env_layers += [(k, v, "env_file") for k, v in env_file.items()]
    env_layers += [(k, v, "config") for k, v in spec.config.env.items()]
    return env_layers, env_dropped


def config_changes(image: Image, plan: ExportPlan, report: Report, used: set[str]
                   ) -> tuple[ConfigChanges, set[str]]:
    """The runtime config: the app's settings and the environment the policy keeps;
    and the values of every dropped variable (to mask them in the history text)."""
    runtime = image.config.get("config")
    env = runtime.get("Env") if isinstance(runtime, dict) else None
    base_env: list[tuple[str, str, str]] = []
    for item in env if isinstance(env, list) else []:
        if isinstance(item, str):
            key, _, value = item.partition("=")
            base_env.append((key, value, "base"))
    leftover = image.config.get("container_config")
    leftover_env = leftover.get("Env") if isinstance(leftover, dict) else None
    build_env = [tuple(item.partition("=")[::2])
                 for item in (leftover_env if isinstance(leftover_env, list) else [])
                 if isinstance(item, str)]
    known = {name for name, _, _ in base_env + plan.env_layers}
    missing = [name for name in plan.allow_env if name not in known]
    for name in reversed(missing):  # first, so the summary's first warnings show them
        report.warnings.insert(0, f"--allow-env {name}: no such variable in the base, "
                                  "env_file or [config] env (a typo?)")
    kept, dropped = plan.policy.filter_env(base_env + plan.env_layers)
    origins = {name: origin for name, _, origin in base_env + plan.env_layers}
    for name in plan.allow_env:
        if name in kept:
            rule = plan.policy.rule_for(name, kept[name])
            if rule is not None:
                used.add(rule.name)
                report.overridden.append({"name": name, "rule": rule.name, "kind": rule.kind,
                                          "origin": origins.get(name, "config"),
                                          "allowed_by": "--allow-env"})
    for decision in sorted(plan.env_dropped + dropped, key=lambda d: d.name):
        used.add(decision.rule)
        report.dropped_env.append({"name": decision.name, "rule": decision.rule,
                                   "kind": decision.kind, "origin": decision.origin})
    new_env = {k: v for k, v, _ in plan.env_layers if k in kept}
    new_env = {k: kept[k] for k in new_env}
    dropped_names = {d.name for d in dropped}
    dropped_values = {v for k, v, _ in base_env + plan.env_layers if k in dropped_names}
    dropped_values |= {v for k, v in build_env if plan.policy.env_rule(k, v) is not None}
    config = plan.spec.config
    return ConfigChanges(
        env=new_env,
        env_remove=[d.name for d in dropped],
        entrypoint=config.entrypoint,
        cmd=config.cmd,
        workdir=config.workdir,
        user=config.user,
        labels=dict(config.labels),
        exposed_ports=config.ports,
        volumes=config.volumes,
        stop_signal=config.stop_signal,
    ), dropped_values
