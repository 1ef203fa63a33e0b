# The serverless worker: `docker build -t USER/bizsent-serve .` (docs/serving.md). It holds bizsent and its
# training/scoring stack at the versions the suite was green with, and no key and no adapter: the endpoint's
# environment names the adapter (BIZSENT_ADAPTER), baked into a derived image or on a network volume.
FROM pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime

# RUNPOD_LOG_LEVEL: the SDK's default (DEBUG) logs every job's input, base64 image and all, and its output.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_DISABLE_PROGRESS_BARS=1 \
    RUNPOD_LOG_LEVEL=INFO

WORKDIR /opt/bizsent/src
COPY . .
# constraints.txt pins torch (and the CUDA libraries it brings) to the version the suite was green with.
RUN pip install --no-cache-dir -c constraints.txt ".[train]" \
    && cd / && rm -rf /opt/bizsent/src

WORKDIR /opt/bizsent
CMD ["python", "-m", "bizsent.core.serve.handler"]
