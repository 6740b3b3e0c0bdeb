"""The agent's policy: every decision about files and commands is made here.

Usage::

    from toolkit import policy

    rules = policy.Policy.resolve(options.policy_path)   # --policy, agent.toml or defaults
    with policy.open_for_read("/var/log/syslog", rules) as opened:
        data = opened.read()                             # never more than [files] max_bytes
    policy.list_dir("/var/log", rules)                   # only entries that may be seen
    policy.stat_path("/etc/os-release", rules)
    policy.match_command(["df", "-h"], rules, "diagnostics")
    env = policy.run_environment()

Every refusal is a :class:`~toolkit.errors.PolicyRefused` whose message is safe
to show the technician and to record. docs/policy.md is the reference: the
schema, the built-in defaults, how patterns match and what is refused.
"""

from toolkit.policy._defaults import DEFAULT_TOML
from toolkit.policy._glob import FilePattern, PatternSet
from toolkit.policy.commands import (
    Placeholder,
    Template,
    match_command,
    run_environment,
)
from toolkit.policy.files import (
    MAX_PATH_BYTES,
    Entry,
    OpenedFile,
    Operation,
    Stat,
    file_rule,
    list_dir,
    open_for_read,
    stat_path,
)
from toolkit.policy.model import Policy, agent_home, default_path, resolve
from toolkit.policy.procedures import ProcedureRules
from toolkit.policy.rules import (
    UNAVAILABLE,
    AllOf,
    Allowlisted,
    AnyOf,
    Candidate,
    Directory,
    FileRule,
    LeadsToAllowlisted,
    NoAliasNames,
    NotDenied,
    NotRemoved,
    OwnMount,
    RegularFile,
    SingleLink,
    SizeWithin,
    UnsafeAllowAll,
)

__all__ = [
    "DEFAULT_TOML",
    "MAX_PATH_BYTES",
    "UNAVAILABLE",
    "AllOf",
    "Allowlisted",
    "AnyOf",
    "Candidate",
    "Directory",
    "Entry",
    "FilePattern",
    "FileRule",
    "LeadsToAllowlisted",
    "NoAliasNames",
    "NotDenied",
    "NotRemoved",
    "OpenedFile",
    "Operation",
    "OwnMount",
    "PatternSet",
    "Placeholder",
    "Policy",
    "ProcedureRules",
    "RegularFile",
    "SingleLink",
    "SizeWithin",
    "Stat",
    "Template",
    "UnsafeAllowAll",
    "agent_home",
    "default_path",
    "file_rule",
    "list_dir",
    "match_command",
    "open_for_read",
    "resolve",
    "run_environment",
    "stat_path",
]
