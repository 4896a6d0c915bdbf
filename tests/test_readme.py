"""The README's install and test commands are the ones CI runs."""
import os
import re

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _section_command(readme, heading):
    section = readme.split("## " + heading, 1)[1]
    return re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()


def test_ci_runs_readme_commands():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci_lines = [line.strip() for line in f]
    for heading in ("Install", "Tests"):
        command = _section_command(readme, heading)
        assert command in ci_lines, f"README {heading} command not run by .ci/run: {command}"
