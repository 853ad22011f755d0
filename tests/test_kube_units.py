"""Fast checks of the Kubernetes backend's pure parts: the Job, the CRD schema, the status."""

from gsl_k8s.backends.kubernetes.crd import crd, openapi_schema
from gsl_k8s.backends.kubernetes.jobs import job_manifest, job_name, task_of
from gsl_k8s.backends.kubernetes.status import Condition, ExperimentStatus
from gsl_k8s.layout import Task
from gsl_k8s.spec import parse_spec
from tests.conftest import TINY_SPEC, merge


def test_a_specialist_job_carries_the_roles_settings():
    experiment = parse_spec(
        merge(
            TINY_SPEC,
            {
                "spec": {
                    "storage": {"uri": "s3://b/p", "endpointUrl": "http://minio:9000"},
                    "kubernetes": {
                        "credentialsSecret": "s3",
                        "specialist": {
                            "resources": {"cpu": "4", "memory": "8Gi", "gpu": 1},
                            "nodeSelector": {"pool": "gpu"},
                            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                            "priorityClassName": "batch-low",
                            "backoffLimit": 5,
                            "activeDeadlineSeconds": 3600,
                            "image": "trainer:cuda",
                        },
                    },
                }
            },
        )
    )
    job = job_manifest(experiment, "s3://b/p/ns/tiny", Task("specialist", 3))
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert job["metadata"]["name"] == job_name("tiny", Task("specialist", 3)) == "tiny-specialist-3"
    assert task_of(job["metadata"]["labels"]) == Task("specialist", 3)
    assert job["spec"]["backoffLimit"] == 5 and job["spec"]["activeDeadlineSeconds"] == 3600
    assert container["command"][:9] == [
        *("gsl", "train", "--run", "s3://b/p/ns/tiny", "--role", "specialist"),
        *("--index", "3", "--metrics-port"),
    ]
    assert container["image"] == "trainer:cuda"
    assert container["resources"]["limits"] == {"memory": "8Gi", "nvidia.com/gpu": 1}
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "8Gi"}
    assert {"name": "AWS_ENDPOINT_URL_S3", "value": "http://minio:9000"} in container["env"]
    assert {"name": "GSL_S3_ADDRESSING_STYLE", "value": "path"} not in container["env"]
    assert container["envFrom"] == [{"secretRef": {"name": "s3"}}]
    assert pod["nodeSelector"] == {"pool": "gpu"} and pod["priorityClassName"] == "batch-low"
    assert pod["serviceAccountName"] == "gsl-trainer"
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in pod["volumes"]


def test_openapi_conversion_is_structural():
    schema = openapi_schema(
        {
            "type": "object",
            "properties": {
                "a": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                "b": {"type": "integer", "exclusiveMinimum": 0, "default": 3, "title": "B"},
                "c": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {}}]},
                "d": {"type": "object", "additionalProperties": True},
                "e": {"$ref": "#/$defs/E"},
            },
            "$defs": {"E": {"type": "string", "enum": ["x", "y"]}},
        }
    )
    assert schema["properties"] == {
        "a": {"type": "string", "nullable": True},
        "b": {"type": "integer", "minimum": 0, "exclusiveMinimum": True, "default": 3},
        "c": {"x-kubernetes-preserve-unknown-fields": True},
        "d": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "e": {"type": "string", "enum": ["x", "y"]},
    }


def test_the_crd_has_a_status_subresource_and_printer_columns():
    [version] = crd()["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = [c["jsonPath"] for c in version["additionalPrinterColumns"]]
    assert columns == [
        ".status.stage",
        ".status.specialistsReady",
        ".status.bestSuccess",
        ".metadata.creationTimestamp",
    ]


def test_status_patches_never_send_empty_strings():
    status = ExperimentStatus(
        conditions=[Condition(type="Failed", status="False", reason="NoFailure")]
    )
    patch = status.to_patch()
    assert patch["conditions"] == [{"type": "Failed", "status": "False", "reason": "NoFailure"}]
    assert "" not in patch.values()
