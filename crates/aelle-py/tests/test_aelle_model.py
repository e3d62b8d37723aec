"""``AeLLE.load`` / ``embed`` / ``predict_high_performing`` and ``EpochMonitor`` on a model the
orchestrator trained (``orchestrator run --preset tiny``: 12 networks, 3 epochs, about a second),
checked against the orchestrator's own outputs: its spectra (``aelle/rows.json``) are what
``lyapunov_spectrum`` computes from its checkpoints and driving inputs, and the AUROC of our
read-out probabilities equals the AeLLE-logistic AUROC of ``orchestrator transfer`` of the model
onto the same run."""

import json
import subprocess

import numpy as np
import pytest
from safetensors.numpy import load_file

import aelle


@pytest.fixture(scope="module")
def run(orchestrator, tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny") / "tiny"
    for args in (["run", "--preset", "tiny", "--run-dir", d], ["transfer", "--model", d, "--run-dir", d]):
        out = subprocess.run([orchestrator, *map(str, args)], capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr[-2000:]
    return d


def auroc(scores, labels):
    """Mann-Whitney: P(score of a positive > score of a negative), ties 1/2."""
    pos, neg = scores[labels], scores[~labels]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return greater / (len(pos) * len(neg))


def test_load_embed_predict_against_the_orchestrator(run):
    model = aelle.AeLLE.load(run)
    same = [aelle.AeLLE.load(run / "aelle" / "pretrained"),
            aelle.AeLLE.load(run / "aelle" / "pretrained" / "model.safetensors")]
    assert model.fitted_networks == 12 and model.points == ["epoch 0", "epoch 1", "epoch 2"]
    transfer = json.loads((run / "transfer" / "tiny.json").read_text())
    all_rows = json.loads((run / "aelle" / "rows.json").read_text())
    for epoch, point in enumerate(transfer["points"]):
        assert point["point"] == {"epoch": epoch}
        rows = [r for r in all_rows if r["epoch"] == epoch]
        spectra = [np.array(r["spectrum"]) for r in rows]  # LSTM 16, GRU / RNN 8 exponents
        z = model.embed(spectra)
        assert z.shape == (len(rows), model.latent_dim)
        for other in same:
            np.testing.assert_array_equal(other.embed(spectra), z)
        np.testing.assert_array_equal(model.embed(spectra[3]), z[3:4])
        np.testing.assert_array_equal(model.embed(np.stack(spectra[:2])), z[:2])  # two of one length
        pred = model.predict_high_performing(spectra, point=f"epoch {epoch}")
        assert pred.point == f"epoch {epoch}" and pred.probability.shape == (len(rows),)
        assert np.all((pred.probability > 0) & (pred.probability < 1))
        np.testing.assert_array_equal(pred.high, pred.probability >= pred.cut)
        labels = np.array([r["final_loss"] < transfer["label_threshold"] for r in rows])
        want = next(c for c in point["classifiers"] if c["classifier"] == "aelle_logistic")["auroc"]["value"]
        assert auroc(pred.probability, labels) == pytest.approx(want, abs=1e-12)
    assert model.predict_high_performing(spectra).point == "epoch 0"  # default: the earliest
    assert model.predict_final_loss(spectra).shape == (len(rows),)


def test_bad_model_inputs(run, tmp_path):
    model = aelle.AeLLE.load(run)
    with pytest.raises(ValueError, match=r"spectra: non-finite value NaN at \[0, 1\]"):
        model.embed(np.array([[0.1, np.nan]]))
    with pytest.raises(ValueError, match=r"spectra: expected a 1-D or 2-D array"):
        model.embed(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"point: 'epoch 7' is not one of"):
        model.predict_high_performing(np.zeros(4), point="epoch 7")
    with pytest.raises(FileNotFoundError, match=r"no aelle/pretrained/model.safetensors"):
        aelle.AeLLE.load(tmp_path)
    with pytest.raises(OSError, match=r"absent"):
        aelle.AeLLE.load(tmp_path / "absent.safetensors")


def test_epoch_monitor_reproduces_the_runs_spectra(run, tmp_path):
    """The run's checkpoints of one network, epoch by epoch, through EpochMonitor: the spectra
    are the run's (same settings: float64, full state, no warm-up, its driving inputs)."""
    model = aelle.AeLLE.load(run)
    driving = load_file(str(run / "spectra" / "driving.safetensors"))["inputs"]
    monitor = aelle.EpochMonitor(driving, model=model)
    rows = {(r["network_id"], r["epoch"]): r for r in json.loads((run / "aelle" / "rows.json").read_text())}
    for epoch in range(3):
        row = monitor.record(run / "nets" / "lstm-001" / f"epoch-{epoch}.safetensors", epoch=epoch,
                             test_loss=rows[("lstm-001", epoch)]["current_loss"])
        np.testing.assert_allclose(row["spectrum"], rows[("lstm-001", epoch)]["spectrum"], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(row["latent"], model.embed(row["spectrum"])[0])
        assert 0 < row["p_high"] < 1
    assert monitor.column("lambda_max").shape == (3,)
    assert monitor.column("spectrum").shape == (3, 16)
    monitor.to_csv(tmp_path / "m.csv")
    header = (tmp_path / "m.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "lambda_max", "p_high", "test_loss", "spectrum_0", "latent_0"} <= set(header)
