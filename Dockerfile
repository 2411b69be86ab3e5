# Intrinsic Lab as a container: dashboard on port 8501, one worker, data in the /data volume.
# docker build -t intrinsic-lab . && docker run -p 8501:8501 -v intrinsic-data:/data intrinsic-lab
# With a GPU: docker run --gpus all -e INTRINSIC_LAB_DEVICE=cuda ... (PyPI's Linux torch wheel includes CUDA).
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends libglib2.0-0 libgl1 libtcmalloc-minimal4 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
RUN useradd --create-home lab && mkdir -p /data && chown lab /data
USER lab
ENV INTRINSIC_LAB_DATA=/data PORT=8501 WORKERS=1 PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8501
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:8501/_stcore/health')"
CMD ["./scripts/serve.sh"]
