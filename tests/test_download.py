"""gdyn download against a real HTTP server on 127.0.0.1 (tests/_data_http_server.py)."""

from __future__ import annotations

import hashlib
import io
import socket

import numpy as np
import pytest
from _data_http_server import Site, serve

from gdyn.cli import main
from gdyn.download import download, normalise_md5, parse_listing, part_path, record_listing
from gdyn.errors import InputError
from gdyn.trajectory import load_trajectory


def trajectory_bytes(n_frames: int = 4000, n_atoms: int = 64, seed: int = 7, **over) -> bytes:
    """An uncompressed PEO-like trajectory .npz (Li targets among O, C, H) as bytes."""
    rng = np.random.default_rng(seed)
    types = np.array([3] * 4 + [8] * 24 + [6] * 20 + [1] * (n_atoms - 48))
    arrays = {
        "traj_coords": (rng.random((n_frames, n_atoms, 3)) * 12.0).astype(np.float32),
        "lattices": np.tile(np.eye(3, dtype=np.float32) * 12.0, (n_frames, 1, 1)),
        "atom_types": types,
        "target_index": np.arange(4),
        "frame_interval_ps": np.float64(2.0),
    }
    arrays.update(over)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


PAYLOAD = trajectory_bytes()  # a valid trajectory of several 1 MiB chunks (~3.2 MB)
MD5 = hashlib.md5(PAYLOAD).hexdigest()
FAST = {"backoff": 0.01, "progress": False}


def test_plain_download_verified(tmp_path):
    site = Site(files={"/f.npz": PAYLOAD})
    out = tmp_path / "raw" / "f.npz"
    with serve(site) as base:
        got = download(f"{base}/f.npz", out, MD5, **FAST)
    assert got == MD5
    assert out.read_bytes() == PAYLOAD
    assert not part_path(out).exists()


def test_dropped_connection_resumes_with_range(tmp_path):
    cut = 1_500_000
    site = Site(files={"/f.npz": PAYLOAD}, drop_after={"/f.npz": cut}, drops_left={"/f.npz": 2})
    out = tmp_path / "f.npz"
    with serve(site) as base:
        assert download(f"{base}/f.npz", out, MD5, retries=3, **FAST) == MD5
    assert hashlib.md5(out.read_bytes()).hexdigest() == MD5
    ranges = [r for _, r in site.requests]
    assert len(ranges) == 3 and ranges[0] is None
    # each retry resumes after what the previous one kept (at most `cut` bytes per try;
    # urllib3 discards the chunk it was reading when the connection drops)
    starts = [int(r.removeprefix("bytes=").rstrip("-")) for r in ranges[1:]]
    assert 0 < starts[0] <= cut and starts[0] < starts[1] <= starts[0] + cut


def test_server_ignoring_range_restarts_cleanly(tmp_path):
    site = Site(files={"/f.npz": PAYLOAD}, drop_after={"/f.npz": 1000}, drops_left={"/f.npz": 1},
                ignore_range=True)
    out = tmp_path / "f.npz"
    with serve(site) as base:
        download(f"{base}/f.npz", out, MD5, retries=2, **FAST)
    assert out.read_bytes() == PAYLOAD


def test_partial_file_kept_then_resumed_by_rerun(tmp_path):
    cut = 700_000
    site = Site(files={"/f.npz": PAYLOAD}, drop_after={"/f.npz": cut}, drops_left={"/f.npz": 1})
    out = tmp_path / "f.npz"
    with serve(site) as base:
        with pytest.raises(InputError, match="after 1 attempts"):
            download(f"{base}/f.npz", out, MD5, retries=0, **FAST)
        assert not out.exists()
        kept = part_path(out).stat().st_size
        assert 0 < kept <= cut
        assert part_path(out).read_bytes() == PAYLOAD[:kept]
        download(f"{base}/f.npz", out, MD5, retries=0, **FAST)
    assert out.read_bytes() == PAYLOAD
    assert site.requests[-1][1] == f"bytes={kept}-"


def test_404_fails_at_once_with_url_and_destination(tmp_path):
    site = Site()
    out = tmp_path / "raw" / "missing.npz"
    with serve(site) as base:
        url = f"{base}/missing.npz"
        with pytest.raises(InputError) as err:
            download(url, out, retries=4, **FAST)
    msg = str(err.value)
    assert url in msg and "404" in msg and str(out) in msg
    assert len(site.requests) == 1  # not retried
    assert not out.exists() and not part_path(out).exists()


def test_checksum_mismatch_discards_everything(tmp_path):
    site = Site(files={"/f.npz": PAYLOAD})
    out = tmp_path / "f.npz"
    wrong = "0" * 32
    with serve(site) as base:
        with pytest.raises(InputError, match=f"expected {wrong}, got {MD5}"):
            download(f"{base}/f.npz", out, wrong, **FAST)
    assert not out.exists() and not part_path(out).exists()


def test_server_that_never_answers_times_out(tmp_path):
    site = Site(hang={"/slow.npz"})
    out = tmp_path / "slow.npz"
    with serve(site) as base:
        url = f"{base}/slow.npz"
        with pytest.raises(InputError) as err:
            download(url, out, timeout=0.3, retries=1, **FAST)
    msg = str(err.value)
    assert url in msg and "after 2 attempts" in msg and "Timeout" in msg and str(out) in msg
    assert len(site.requests) == 2
    assert not out.exists() and not part_path(out).exists()


def test_offline_cli_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("gdyn.cli.STAGES", ("data",))  # independent of other stages
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/records/abc/files/li2s-traj.npz?download=1"
    out = tmp_path / "raw" / "li2s-traj.npz"
    rc = main(["download", url, str(out), "--retries", "1", "--backoff", "0.01",
               "--timeout", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    last = err[-1]
    assert last.startswith("gdyn download: error: could not download " + url)
    assert f"put it at {out}" in last
    assert not out.exists() and not part_path(out).exists()


def _listing(name, md5, size):
    return {"entries": [{"key": "other.npz", "checksum": "md5:" + "1" * 32, "size": 3},
                        {"key": name, "checksum": f"md5:{md5}", "size": size}]}


def test_md5_from_record_listing_accepts_good_file(tmp_path):
    site = Site(files={"/records/abc/files/f.npz": PAYLOAD},
                json={"/api/records/abc/files": _listing("f.npz", MD5, len(PAYLOAD))})
    out = tmp_path / "f.npz"
    with serve(site) as base:
        download(f"{base}/records/abc/files/f.npz?download=1", out, **FAST)
    assert out.read_bytes() == PAYLOAD
    assert site.requests[0][0] == "/api/records/abc/files"


def test_md5_from_record_listing_rejects_bad_file(tmp_path):
    bad = PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 1])
    site = Site(files={"/records/abc/files/f.npz": bad},
                json={"/api/records/abc/files": _listing("f.npz", MD5, len(PAYLOAD))})
    out = tmp_path / "f.npz"
    with serve(site) as base:
        with pytest.raises(InputError, match=f"md5: expected {MD5}"):
            download(f"{base}/records/abc/files/f.npz?download=1", out, **FAST)
    assert not out.exists() and not part_path(out).exists()


def test_listing_unavailable_still_downloads(tmp_path, caplog):
    site = Site(files={"/records/abc/files/f.npz": PAYLOAD})  # listing is a 404
    out = tmp_path / "f.npz"
    with serve(site) as base:
        download(f"{base}/records/abc/files/f.npz?download=1", out, **FAST)
    assert out.read_bytes() == PAYLOAD
    assert "not verified" in caplog.text and MD5 in caplog.text


def test_listing_helpers():
    assert record_listing(
        "https://archive.materialscloud.org/records/gbzya-fbr45/files/peo-traj-a.npz?download=1"
    ) == ("https://archive.materialscloud.org/api/records/gbzya-fbr45/files", "peo-traj-a.npz")
    assert record_listing("https://example.org/data/f.npz") is None
    # the record view's dict form of `entries` works too
    listing = {"entries": {"f.npz": {"checksum": "md5:" + MD5.upper(), "size": 5}}}
    assert parse_listing(listing, "f.npz") == (MD5, 5)
    assert parse_listing(listing, "g.npz") == (None, None)
    assert normalise_md5("MD5:" + MD5.upper()) == MD5
    with pytest.raises(InputError, match="32 hexadecimal"):
        normalise_md5("abc")


def test_compressed_npz_is_stored_uncompressed(tmp_path):
    import zipfile

    arrays = {"traj_coords": np.arange(60.0).reshape(2, 10, 3),
              "lattices": np.tile(np.eye(3) * 30.0, (2, 1, 1)),
              "atom_types": np.arange(1, 11), "target_index": np.array([0, 3])}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    data = buf.getvalue()
    site = Site(files={"/c.npz": data})
    out = tmp_path / "c.npz"
    with serve(site) as base:
        got = download(f"{base}/c.npz", out, hashlib.md5(data).hexdigest(), **FAST)
    assert got == hashlib.md5(data).hexdigest()  # verified as downloaded
    with zipfile.ZipFile(out) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    with np.load(out) as z:
        for k, v in arrays.items():
            np.testing.assert_array_equal(z[k], v)
    assert not part_path(out).exists()


def test_size_from_record_listing_is_checked(tmp_path):
    # md5 pinned (so it is not what fails) but the listing's size disagrees
    site = Site(files={"/records/abc/files/f.npz": PAYLOAD},
                json={"/api/records/abc/files": _listing("f.npz", MD5, len(PAYLOAD) + 1)})
    out = tmp_path / "f.npz"
    with serve(site) as base:
        download(f"{base}/records/abc/files/f.npz?download=1", out, MD5, **FAST)
        assert out.read_bytes() == PAYLOAD  # a pinned md5 wins: the listing is not read
        out.unlink()
        with pytest.raises(InputError, match=rf"size: expected {len(PAYLOAD) + 1} bytes"):
            download(f"{base}/records/abc/files/f.npz?download=1", out, **FAST)
    assert not out.exists() and not part_path(out).exists()
    assert [p for p, _ in site.requests].count("/api/records/abc/files") == 1


# ----------------------------------------------------------------------------- unverified
# No md5 known (config/paper.yaml pins none, and the record's listing may be unreachable):
# the trajectory validator is what stands between a wrong body and the final path.


def test_html_error_page_with_status_200_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("gdyn.cli.STAGES", ("data",))
    page = b"<html><body>Rate limited</body></html>\n"
    assert len(page) == 39
    site = Site(files={"/f.npz": page}, types={"/f.npz": "text/html"})
    out = tmp_path / "raw" / "f.npz"
    with serve(site) as base:
        url = f"{base}/f.npz"
        rc = main(["download", url, str(out), "--retries", "0", "--no-listing"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith(f"gdyn download: error: could not download {url}: received an "
                              "HTML page, 39 bytes, not a .npz trajectory")
    assert f"put it at {out}" in err[-1]
    assert not out.exists() and not part_path(out).exists()
    assert list(out.parent.iterdir()) == []


def test_body_cut_short_without_content_length_is_refused(tmp_path):
    cut = 1_000_000
    site = Site(files={"/f.npz": PAYLOAD}, close_early={"/f.npz": cut})
    out = tmp_path / "f.npz"
    with serve(site) as base:
        url = f"{base}/f.npz"
        with pytest.raises(InputError) as err:
            download(url, out, retries=0, use_listing=False, **FAST)
    msg = str(err.value)
    assert msg.startswith(f"could not download {url}: received a truncated or corrupt zip "
                          f"archive of {cut} bytes")
    assert str(out) in msg
    assert not out.exists() and not part_path(out).exists()
    assert len(site.requests) == 1


def test_zip_that_is_not_a_trajectory_is_refused(tmp_path):
    bad = trajectory_bytes(n_frames=10, target_index=np.array([99]))  # no atom 99
    site = Site(files={"/f.npz": bad})
    out = tmp_path / "f.npz"
    with serve(site) as base:
        url = f"{base}/f.npz"
        with pytest.raises(InputError, match=r"which is not a valid trajectory \(the file: key "
                                             r"'target_index': expected atom indices in \[0, 64\)"):
            download(url, out, retries=0, use_listing=False, **FAST)
    assert not out.exists() and not part_path(out).exists()


def test_unverified_valid_trajectory_is_kept(tmp_path):
    site = Site(files={"/f.npz": PAYLOAD}, close_early={})
    out = tmp_path / "f.npz"
    with serve(site) as base:
        download(f"{base}/f.npz", out, use_listing=False, **FAST)
    traj = load_trajectory(out)
    assert traj.n_frames == 4000 and traj.n_atoms == 64
    assert out.read_bytes() == PAYLOAD


def test_full_disk_is_one_line_naming_the_part_file(tmp_path, capsys, monkeypatch):
    import subprocess

    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    monkeypatch.setattr("gdyn.cli.STAGES", ("data",))
    try:
        site = Site(files={"/f.npz": PAYLOAD})
        out = mnt / "f.npz"
        with serve(site) as base:
            rc = main(["download", f"{base}/f.npz", str(out), "--md5", MD5, "--retries", "3"])
        # (the test server's own thread may log the connection the client dropped)
        err = [line for line in capsys.readouterr().err.splitlines() if "gdyn" in line]
        assert rc == 1 and len(err) == 1
        assert err[0].startswith(f"gdyn download: error: {part_path(out)}: No space left on "
                                 "device (0.0 MiB free on its file system")
        assert len(site.requests) == 1  # a full disk is not retried
        assert not out.exists()
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
