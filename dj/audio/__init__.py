"""Audio: pure DSP on ``(channels, frames)`` float32 arrays (dsp, analysis, deadair), file decoding
(decode), the session renderer (render) with its master chain (master), and the MP3 encoder
(encode). Import the modules directly; nothing heavy is imported here."""
