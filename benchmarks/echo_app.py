"""The baseline for predict_load.py: a bare Flask app that echoes a JSON body."""

from flask import Flask, jsonify, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/echo")
    def echo():
        return jsonify(request.get_json())

    return app
