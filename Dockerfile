FROM python:3.12-slim

# No system FFmpeg: camgate runs the static build that the imageio-ffmpeg wheel brings, which
# starts far faster than a dynamically linked one (see FFMPEG_PATH in the README).
WORKDIR /app
COPY pyproject.toml README.md SECURITY.md ./
COPY camgate ./camgate
RUN pip install --no-cache-dir . && mkdir -p /data && chown nobody /data

# Listening on every address of the container: camgate refuses to start until an API token is
# given (docker run -e CAMGATE_API_TOKENS=admin:... or CAMGATE_API_TOKENS_FILE), see SECURITY.md.
# WebRTC on one UDP port, which `docker run -p 8555:8555/udp` can publish (the kernel's ports
# per session could not be); WEBRTC_ADDRESS must then name the host's address (README, WebRTC).
ENV CAMGATE_HOST=0.0.0.0 \
    CAMGATE_PORT=8080 \
    CAMGATE_DATA_DIR=/data \
    WEBRTC_PORTS=8555
VOLUME /data
EXPOSE 8080 8555/udp
USER nobody
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)" || exit 1
CMD ["camgate", "serve"]
