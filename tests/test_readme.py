"""README's test command is exactly what CI (.ci/run) runs."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ci_runs_readme_test_command():
  readme = (ROOT / 'README.md').read_text()
  blocks = re.findall(r'```bash\n(.*?)\n```', readme, flags=re.S)
  # The set-up command that installs and runs the tests (the fast-lane block
  # runs pytest without installing).
  test_commands = [b for b in blocks if 'pytest' in b and 'pip install' in b]
  assert len(test_commands) == 1, test_commands
  ci_lines = (ROOT / '.ci' / 'run').read_text().splitlines()
  assert test_commands[0].strip() in [l.strip() for l in ci_lines]
