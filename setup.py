from setuptools import find_packages, setup

RUNTIME = [
    "paddlepaddle>=3.0",  # GPU users: install paddlepaddle-gpu first (see README)
    "paddlenlp==2.8.1",
    "huggingface_hub==0.23.4",
    "aistudio-sdk==0.2.6",
    "numpy==1.26.4",
    "pyarrow<26",
    "protobuf<7",
    "jieba",
    "tqdm",
    "PyYAML>=5.1",  # palm's configs
    "matplotlib",  # palm plot
    "fastapi",  # palm serve (paddlenlp installs it too)
    "uvicorn",  # palm serve (paddlenlp installs it too)
]

setup(
    name="paddlepalm",
    version="0.1.0",
    description="Multi-task learning for NLP on PaddlePaddle 3, with the PALM 2.x script API",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["paddlepalm", "paddlepalm.*"]),
    package_data={"paddlepalm": ["downloader/*.json", "utils/csrc/*.cc"]},
    python_requires=">=3.9",
    install_requires=RUNTIME,
    entry_points={"console_scripts": ["palm = paddlepalm.cli:main"]},
    extras_require={"test": ["pytest"],
                    # export(format="onnx") and Predictor on ONNX models; ml_dtypes: onnxruntime.quantization
                    # imports it (the int8 model of export(runtime="auto")); 0.5.4 is the last for numpy 1.x
                    "onnx": ["paddle2onnx==2.1.0", "onnxruntime>=1.17", "ml_dtypes==0.5.4"],
                    # transformers 4.44 still works with the huggingface_hub pin paddlenlp needs
                    "bench": ["torch==2.13.0", "transformers==4.44.2"]},
)
