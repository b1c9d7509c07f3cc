# backprop-service: `backprop serve` (nginx before gunicorn on the app factory, and a training
# worker), as a non-root user, with the shipped model.
#   docker build -t backprop-service .
#   export BACKPROP_API_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
#   docker run -p 8000:8000 -p 8001:8001 -e BACKPROP_API_TOKEN -v models:/srv/model_store backprop-service
# (8001: the Open Inference Protocol over gRPC; BACKPROP_GRPC_PORT=0 turns it off.)
# The API alone: ... backprop-service backprop serve --no-worker
# A training worker alone, same image: ... backprop-service backprop worker
ARG PYTHON_IMAGE=python:3.11-slim
# The package's extras in the image (Redis queues, OpenTelemetry tracing); add onnx for GET
# .../model.onnx (about 60 MB more).
ARG EXTRAS=redis,otel

# 1. Install the package and its runtime dependencies (no torch, no dev tools) into a venv, less
#    what only builds extensions (NumPy's f2py, distutils and C headers) and the parts of Pillow
#    that the service never calls: it decodes PNG and JPEG (service/api/inputs.py), so not AVIF
#    or WebP, and it draws no text (FreeType, HarfBuzz) and no Tk window. Pillow skips a plugin
#    whose extension is missing, so other formats read as "not an image": about 10 MB.
FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md /src/
COPY service /src/service
WORKDIR /opt/venv/lib/python3.11/site-packages
RUN /opt/venv/bin/pip install "/src[${EXTRAS}]" \
 && /opt/venv/bin/pip uninstall -y pip setuptools \
 && find /opt/venv -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} + \
 && find /opt/venv -name '*.pyi' -delete \
 && rm -rf numpy/f2py numpy/distutils numpy/_core/include \
           PIL/_avif.*.so PIL/_webp.*.so PIL/_imagingft.*.so PIL/_imagingtk.*.so \
           pillow.libs/libavif-* pillow.libs/libwebp* pillow.libs/libsharpyuv-* pillow.libs/libfreetype-* \
           pillow.libs/libharfbuzz-* pillow.libs/libbrotli* pillow.libs/libpng16-* \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# 2. The base system and nginx (the front that buffers slow clients), without what a service never
#    reads: docs, man pages, locales, time zones (it logs in UTC), system pip, nginx's own site
#    configuration, glibc's character set converters (Python and nginx bring their own), the parts
#    of Python's standard library for people at a desk (Tk, IDLE, 2to3, pydoc's topics, ensurepip)
#    and its tests; and, once nginx is in, the package manager and Perl, which only it used (dpkg
#    records their removal: scanners read a true list). To add system packages, derive from this
#    stage, not from the final image.
FROM ${PYTHON_IMAGE} AS runtime-root
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null \
 && rm -rf /etc/nginx/sites-enabled /var/log/nginx/* \
 && rm -rf /usr/share/doc /usr/share/man /usr/share/info /usr/share/locale /usr/share/python-wheels \
           /usr/lib/python3/dist-packages /var/cache/* /var/lib/apt/lists/* /root/.cache \
           /usr/lib/x86_64-linux-gnu/gconv /usr/share/zoneinfo \
 && dpkg --purge --force-remove-essential --force-depends apt libapt-pkg6.0 perl-base >/dev/null 2>&1 \
 && for lib in /usr/lib/python3.11 /usr/local/lib/python3.11; do \
        rm -rf "$lib"/tkinter "$lib"/idlelib "$lib"/turtledemo "$lib"/lib2to3 "$lib"/pydoc_data \
               "$lib"/ensurepip "$lib"/test "$lib"/distutils; \
    done \
 && groupadd --system --gid 10001 backprop \
 && useradd --system --uid 10001 --gid 10001 --home-dir /srv --shell /usr/sbin/nologin backprop \
 && mkdir -p /srv/model_store /srv/var /srv/data \
 && chown -R 10001:10001 /srv

# 3. One flat layer: the pruned system, the venv and the default model.
FROM scratch
COPY --from=runtime-root / /
COPY --from=build /opt/venv /opt/venv
COPY --chown=10001:10001 model_store /srv/model_store
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 PYTHONUNBUFFERED=1 \
    BACKPROP_HOST=0.0.0.0 BACKPROP_PORT=8000 BACKPROP_GRPC_PORT=8001 \
    BACKPROP_MODEL_STORE=/srv/model_store BACKPROP_STATE_DIR=/srv/var BACKPROP_DATA_DIR=/srv/data
WORKDIR /srv
USER 10001:10001
VOLUME ["/srv/model_store"]
EXPOSE 8000 8001
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 CMD ["backprop", "health"]
# Listening on 0.0.0.0 needs BACKPROP_API_TOKEN (or BACKPROP_ALLOW_INSECURE=1): serve refuses otherwise.
CMD ["backprop", "serve"]
