"""The 0002 migration matches the benchmark models; the bench/datasets CLI end to end on a tiny folder."""

import json


from engine.cli import main

from benchmark.tiny_data import write_tiny_mit


def test_migration_0002_matches_the_benchmark_models(bench_store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import db.benchmark_store  # noqa: F401  (puts the benchmark tables on the shared metadata)
    from db.models import Base
    from db.session import current_revision, downgrade, head_revision, make_engine, migrate

    assert current_revision() == head_revision()  # migrated to the newest revision, 0002 or later
    engine = make_engine()
    try:
        with engine.connect() as connection:
            diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    ours = [d for d in diffs if "benchmark" in repr(d)]
    assert ours == []
    downgrade(revision="0001_initial")  # and back down cleanly
    assert current_revision() == "0001_initial"
    migrate()


def test_cli_checks_registers_and_benchmarks(data_dir, tmp_path, capsys):
    folder = write_tiny_mit(tmp_path / "mit")
    assert main(["datasets", "check", "mit-intrinsic", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["datasets", "register", "mini", "mit-intrinsic", str(folder)]) == 0
    assert "items per split: test 0, train 2, all 2" in capsys.readouterr().out
    csv = tmp_path / "scores.csv"
    code = main(["bench", "@baselines", "--dataset", "mini", "--split", "train", "--device", "cpu",
                 "--csv", str(csv), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    table = json.loads(out)
    assert [row["method"] for row in table] == ["baseline_color_retinex", "baseline_image_albedo"]
    assert table[0]["grosse_lmse"] < table[1]["grosse_lmse"] and table[0]["images"] == 2
    assert len(csv.read_text().splitlines()) == 1 + 2 * 2 * 7  # header + methods × items × MIT metrics
    assert main(["bench", "@baselines", "--dataset", "mini", "--split", "train", "--device", "cpu"]) == 0
    assert "re-used an identical configuration" in capsys.readouterr().err
    assert main(["bench", "jiep", "--dataset", "mini", "--split", "test"]) == 2
    assert "the 'test' split of MIT Intrinsic Images is empty here; it has items in: train, all" in \
        capsys.readouterr().err
