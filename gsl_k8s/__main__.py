from gsl_k8s.cli import main

raise SystemExit(main())
