"""The job zip that travels with every spark-submit (`--py-files`)."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from nightshelf import package


def test_the_zip_holds_the_packages_and_is_named_by_its_contents(tmp_path):
    first = package.job_zip(tmp_path)
    names = set(zipfile.ZipFile(first).namelist())
    for name in ("nightshelf/defaults.yaml", "nightshelf/config.py", "jobs/score.py",
                 "training/model.py", "expectations/validate.py"):
        assert name in names, name
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]
    again = package.job_zip(tmp_path / "elsewhere")
    assert again.name == first.name and again.read_bytes() == first.read_bytes()


def test_code_imported_from_the_zip_alone_loads_its_config(tmp_path):
    """What an executor without the checkout does: import the packages from the zip (first
    on sys.path) and read the defaults from inside it."""
    zipped = package.job_zip(tmp_path)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "import nightshelf.config as c, training.metrics as m; "
            "assert c.__file__.startswith(sys.argv[1]), c.__file__; "
            "assert m.__file__.startswith(sys.argv[1]), m.__file__; "
            "print(c.load_config(environ={}).spark.master)")
    out = subprocess.run([sys.executable, "-c", code, str(zipped)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "local[*]"


def test_a_changed_file_makes_a_new_zip(tmp_path, monkeypatch):
    first = package.job_zip(tmp_path)
    files = package._files()
    monkeypatch.setattr(package, "_files", lambda: files + [("nightshelf/extra.py", first)])
    second = package.job_zip(tmp_path)
    assert second != first and second.exists() and first.exists()


def test_only_the_newest_zips_are_kept(tmp_path, monkeypatch):
    import os

    files = package._files()
    made = []
    for i in range(package.KEEP + 2):
        extra = tmp_path / f"extra{i}.py"
        extra.write_text(f"X = {i}\n")
        monkeypatch.setattr(package, "_files", lambda e=extra: files + [("nightshelf/x.py", e)])
        made.append(package.job_zip(tmp_path / "dist"))
        os.utime(made[-1], (i, i))  # made in this order
    kept = sorted((tmp_path / "dist").glob("nightshelf-jobs-*.zip"))
    assert kept == sorted(made[-package.KEEP:])
