"""A good plugin: a diagnostic, a fix, one procedure for another platform."""

from toolkit.plugins import Diagnostic, Fix, Parameter, ParameterType, Plugin

plugin = Plugin(
    name="good",
    version="2.1",
    summary="A plugin that loads",
    procedures=(
        Diagnostic(
            name="greeting",
            summary="Say hello (also given by the plugin 'duplicate')",
            run=[["echo", "hello"]],
        ),
        Diagnostic(
            name="kernel",
            summary="The kernel's name and release",
            platforms=("linux", "macos"),
            run=[["uname", "-sr"]],
        ),
        Fix(
            name="flag-file",
            summary="Create a flag file under /tmp",
            description="Creates /tmp/NAME.flag.\nRemoves it on rollback.",
            parameters=(
                Parameter("flag", pattern=r"[a-z]+", description="the flag's name", default="x"),
                Parameter(
                    "mode", pattern=r"[0-7]{3}", type=ParameterType.INTEGER, minimum=0, maximum=777
                ),
            ),
            reads=("/tmp/{flag}.flag",),
            check=[["test", "-e", "/tmp/{flag}.flag"]],
            apply=[["install", "-m", "{mode}", "/dev/null", "/tmp/{flag}.flag"]],
            verify=[["test", "-e", "/tmp/{flag}.flag"]],
            rollback=[["rm", "-f", "/tmp/{flag}.flag"]],
        ),
        Diagnostic(
            name="windows-version",
            summary="The Windows version",
            platforms=("windows",),
            run=[["cmd", "/c", "ver"]],
        ),
    ),
)
