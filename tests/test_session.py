"""A listener's session survives a fault in the mix: the stream goes on, decodable, and the fault
is counted."""

from __future__ import annotations

from .streamcheck import decode_mp3, longest_silence_s


def test_a_renderer_fault_restarts_the_mix_and_the_stream_goes_on(demo_station):
    station = demo_station
    session = station.open_session(station.listener("fault-check"), None)
    before = station.failures["renderer"]
    data = b"".join(session.render_next().data for _ in range(20))

    broken = session.renderer

    def fail(n_frames):  # stands in for a bug deep in the DSP
        raise RuntimeError("mix fault")

    broken.render = fail
    chunks = [session.render_next() for _ in range(60)]
    data += b"".join(c.data for c in chunks)

    assert session.renderer is not broken
    assert station.failures["renderer"] == before + 1
    starts = [m for c in chunks for m in c.markers if m.kind == "track_start"]
    assert starts and starts[0].frame >= 20 * session.block_frames  # frames keep counting on
    decoded = decode_mp3(data)
    assert decoded.returncode == 0, decoded.stderr
    assert longest_silence_s(decoded.pcm, decoded.rate) < 2.0
    station.release(session)
