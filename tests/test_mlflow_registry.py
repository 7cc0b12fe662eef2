"""MLflow conventions: the experiment's kind, the typology model's aliases, optional registration
and a signature without integer columns. A real SQLite store in tmp_path, typologies fitted on
planted area features (no Spark); expectations come from the fitted models in memory and from
what the store says.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.types import DataType
from test_experiment import planted_features

from zicht.jobs import experiment as experiment_job
from zicht.jobs import tracking
from zicht.jobs.config import load_settings
from zicht.jobs.track import log_area_models, log_typology_model
from zicht.models.typology import AreaModelResult, fit_area_models, rate_parts_from_catalogue

pytestmark = pytest.mark.e2e  # fits typologies and logs models: seconds each, no Spark

SEED = 20261201
NAME = "zicht-area-typology-registry-test"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An output folder whose SQLite store sits beside it, as ``zicht run`` makes it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "output"
    out.mkdir()
    yield out
    mlflow.set_tracking_uri("")


def _fit(n_side: int, seed: int, *, integer_columns: bool = False) -> AreaModelResult:
    settings = load_settings()
    features = planted_features(n_side, seed)
    if integer_columns:  # counts as Spark's toPandas gives them: int64
        counts = [c for c in features.columns if c.endswith("_incidents")]
        features[counts] = features[counts].astype("int64")
        features["context_inhabitants"] = features["context_inhabitants"].astype("int64")
    return fit_area_models(
        features,
        phenomena=["drugs", "geweld"],
        settings=settings.model,
        rate_parts=rate_parts_from_catalogue(settings.indicators),
    )


def _logged_run(result: AreaModelResult, name: str | None) -> tuple[str, str | None]:
    with mlflow.start_run() as run:
        info = log_typology_model(result, registered_model_name=name)
    version = None if info.registered_model_version is None else str(info.registered_model_version)
    return run.info.run_id, version


def test_the_experiment_opens_on_its_runs(store: Path) -> None:
    tracking.use_experiment("zicht-kind-test", str(store))
    client = mlflow.MlflowClient()
    made = client.get_experiment_by_name("zicht-kind-test")
    assert made.tags["mlflow.experimentKind"] == "custom_model_development"

    # an experiment made before (by an earlier zicht, or by hand) gets the tag; a kind someone
    # chose stays
    bare = client.create_experiment("zicht-made-by-hand")
    chosen = client.create_experiment(
        "zicht-chosen", tags={"mlflow.experimentKind": "genai_development"}
    )
    tracking.use_experiment("zicht-made-by-hand", str(store))
    tracking.use_experiment("zicht-chosen", str(store))
    assert client.get_experiment(bare).tags["mlflow.experimentKind"] == "custom_model_development"
    assert client.get_experiment(chosen).tags["mlflow.experimentKind"] == "genai_development"


def test_candidate_follows_each_run_and_promote_moves_champion(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    print(f"seed={SEED}")
    first, second = _fit(8, SEED), _fit(9, SEED + 1)
    tracking.use_experiment("zicht-registry-test", str(store))
    client = mlflow.MlflowClient()

    run1, v1 = _logged_run(first, NAME)
    assert str(client.get_model_version_by_alias(NAME, "candidate").version) == v1
    run2, v2 = _logged_run(second, NAME)
    assert (v1, v2) == ("1", "2")
    assert client.get_model_version_by_alias(NAME, "candidate").run_id == run2
    assert client.get_run(run2).data.tags["zicht.model_version"] == f"{NAME}/2"
    assert "champion" not in client.get_registered_model(NAME).aliases

    conf = tmp_path / "name.yaml"
    conf.write_text(f"model: {{registered_model_name: {NAME}}}\n")
    promote = ["--conf", str(conf), "--output", str(store)]
    assert experiment_job.main(["--promote", "1", *promote]) == 0
    assert "champion -> version 1 (no champion before" in capsys.readouterr().out
    assert client.get_model_version_by_alias(NAME, "champion").run_id == run1

    # what a researcher loads: the champion scores like the first run's pipeline in memory
    probe = pd.concat([first.input_example, second.input_example], ignore_index=True)
    champion = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    columns = champion.metadata.get_input_schema().input_names()  # as the README loads it
    np.testing.assert_array_equal(
        np.asarray(champion.predict(probe[columns].astype("float64"))), first.model.predict(probe)
    )

    assert experiment_job.main(["--promote", "2", *promote]) == 0
    assert "champion -> version 2 (was version 1" in capsys.readouterr().out
    assert client.get_model_version_by_alias(NAME, "champion").run_id == run2

    # a version the store does not have: refused, champion unchanged
    assert experiment_job.main(["--promote", "9", *promote]) == 2
    assert "9" in capsys.readouterr().err
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"


def test_registration_is_off_with_a_null_name(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "off.yaml"
    conf.write_text("model: {registered_model_name: null}\n")
    settings = load_settings(conf)
    assert settings.model.registered_model_name is None

    result = _fit(7, SEED)
    tracking.use_experiment("zicht-unregistered-test", str(store))
    run_id, version = _logged_run(result, settings.model.registered_model_name)
    assert version is None
    assert mlflow.MlflowClient().search_registered_models() == []
    # the model is still logged with the run and loads from it
    logged = mlflow.pyfunc.load_model(f"runs:/{run_id}/area_typology")
    probe = result.input_example
    np.testing.assert_array_equal(np.asarray(logged.predict(probe)), result.model.predict(probe))

    assert experiment_job.main(["--promote", "1", "--conf", str(conf), "--output", str(store)]) == 2
    assert "registered_model_name is null" in capsys.readouterr().err


def test_logging_the_area_models_warns_of_no_integer_column(store: Path) -> None:
    result = _fit(8, SEED, integer_columns=True)
    assert (result.features.dtypes == "int64").sum() >= 3  # year and counts: the warning's cause
    tracking.use_experiment("zicht-signature-test", str(store))
    with mlflow.start_run(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = log_area_models(result, registered_model_name=None)
    integer_hints = [w for w in caught if "integer column" in str(w.message)]
    assert not integer_hints, [str(w.message)[:120] for w in integer_hints]
    assert info.signature is not None
    assert set(info.signature.inputs.input_types()) == {DataType.double}
    assert info.signature.inputs.input_names() == result.feature_columns
