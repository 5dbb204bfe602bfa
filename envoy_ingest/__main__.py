from envoy_ingest.cli import main

raise SystemExit(main())
