"""Start the pipelines service: `python server.py [--port 8080] [--help]`."""

from server.__main__ import main

if __name__ == "__main__":
    main()
