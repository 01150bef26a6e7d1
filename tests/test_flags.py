from pipeline import flags


def test_flags_json_matches_the_registries():
    # Stale after a change to models/, regularizers/ or pipeline/: run `python -m pipeline.flags`.
    cached = flags.table()
    assert cached == flags.build(), "pipeline/flags.json is stale: run `python -m pipeline.flags`"
    assert flags.json.loads(flags.TABLE_PATH.read_text())["sources_sha256"] == flags.sources_sha256()


def test_a_flags_json_that_is_not_the_table_is_rebuilt(tmp_path, monkeypatch):
    # `[]`, or the right hash without `options`, gave a traceback (issue 25, item 9).
    assert set(flags.build()) == flags.TABLE_KEYS
    for text in ("[]", flags.json.dumps({"sources_sha256": flags.sources_sha256()}),
                 "[" * 100_000):
        (tmp_path / "flags.json").write_text(text)
        monkeypatch.setattr(flags, "TABLE_PATH", tmp_path / "flags.json")
        assert set(flags.table()) == flags.TABLE_KEYS


def test_help_shows_tuples_as_they_are_typed():
    import train

    epilog = train._epilog(flags.table())
    assert "--filters 16,32" in epilog and "[16, 32]" not in epilog
