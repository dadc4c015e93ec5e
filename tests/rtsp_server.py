"""A real RTSP server on loopback for tests, plus the handle that starts and stops it.

Run as a script by Debian's `/usr/bin/python3` (which has python3-gi and GStreamer's
gst-rtsp-server; the project's venv does not), it serves one video file at
`rtsp://127.0.0.1:PORT/test`:

    /usr/bin/python3 tests/rtsp_server.py VIDEO [--port N]

The file is decoded and re-encoded as RTP/JPEG (cheap at test sizes, and FFmpeg reads it
without an H.264 decoder); `--codec h264` uses x264 instead. The media is not shared, so
every client (and every reconnect) starts the file from the beginning. The script prints
`READY <port>` once the server listens; port 0 lets the server pick a free port.

Imported by tests/conftest.py from the venv, it only provides `RtspServer`, which runs
the script as a subprocess; gi is imported inside `serve()` only.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
PIPELINES = {
    "mjpeg": "( filesrc location={loc} ! decodebin ! videoconvert ! jpegenc quality=85 "
    "! rtpjpegpay name=pay0 pt=26 )",
    "h264": "( filesrc location={loc} ! decodebin ! videoconvert ! x264enc tune=zerolatency "
    "speed-preset=ultrafast key-int-max=15 ! rtph264pay name=pay0 pt=96 config-interval=1 )",
}


def server_available() -> str | None:
    """None when the server can run here, else the reason it cannot (for pytest.skip)."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not installed (needs Debian python3-gi)"
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
        "from gi.repository import Gst; Gst.init(None);"
        "import sys; sys.exit(0 if all(Gst.ElementFactory.find(e) for e in "
        "('decodebin', 'jpegenc', 'rtpjpegpay', 'videoconvert')) else 3)"
    )
    res = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True)
    if res.returncode != 0:
        return (
            "GStreamer RTSP server not installed (apt-get install python3-gi "
            "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-{base,good,bad,ugly} "
            f"gstreamer1.0-libav): {res.stderr.strip().splitlines()[-1:] or res.returncode}"
        )
    return None


class RtspServer:
    """The server subprocess: start() waits until it accepts TCP connections, stop() kills it.

    The port survives stop()/start(), so a test can kill the server mid-stream and bring
    it back at the same URL.
    """

    def __init__(self, video: Path, port: int = 0, codec: str = "mjpeg") -> None:
        self.video = Path(video)
        self.port = port
        self.codec = codec
        self._proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/test"

    def start(self, startup_s: float = 30.0) -> None:
        if self._proc is not None:
            raise RuntimeError("RTSP server already running")
        cmd = [SYSTEM_PYTHON, __file__, str(self.video), "--port", str(self.port),
               "--codec", self.codec]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # the script exits (EOF) if it cannot start
        if not line.startswith("READY"):
            self.stop()
            raise RuntimeError(f"RTSP server did not start: {line!r}")
        self.port = int(line.split()[1])
        deadline = time.monotonic() + startup_s
        while True:  # READY is printed after attach(); still confirm it accepts.
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"RTSP server not accepting on port {self.port}") from None
                time.sleep(0.05)

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing arrives (a stalled server)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGKILL, like a crashed server: clients see the connection drop."""
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGKILL)  # also ends a SIGSTOPped process
        self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None


def serve(video: str, port: int, codec: str) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    # gst-launch syntax: a double-quoted value may hold spaces; escape quotes in the path.
    factory.set_launch(PIPELINES[codec].format(loc='"' + video.replace('"', '\\"') + '"'))
    factory.set_shared(False)
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print(f"READY {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--codec", choices=sorted(PIPELINES), default="mjpeg")
    args = ap.parse_args()
    if not os.path.isfile(args.video):
        sys.exit(f"{args.video}: no such file")
    serve(os.path.abspath(args.video), args.port, args.codec)


if __name__ == "__main__":
    main()
