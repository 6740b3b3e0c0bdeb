"""A plugin whose fix puts a parameter in a command's first word: refused when it is built."""

from toolkit.plugins import Fix, Parameter, Plugin

plugin = Plugin(
    name="bad-declaration",
    version="1",
    procedures=(
        Fix(
            name="run-anything",
            summary="Runs whatever program it is given",
            parameters=(Parameter("program", pattern=r"[a-z]+"),),
            apply=[["{program}"]],
        ),
    ),
)
