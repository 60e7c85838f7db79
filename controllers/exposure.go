package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// ragServerIngress routes host/ to the RAG server's Service (nil when none is declared).
func ragServerIngress(ra *ragv1.RagAppliance) *networkingv1.Ingress {
	spec := ra.Spec.RagServer.Ingress
	if spec == nil {
		return nil
	}
	ing := &networkingv1.Ingress{
		TypeMeta:   typeMeta("networking.k8s.io/v1", "Ingress"),
		ObjectMeta: objectMeta(ra, ragServerName(ra), componentRagServer),
		Spec: networkingv1.IngressSpec{
			IngressClassName: spec.ClassName,
			Rules: []networkingv1.IngressRule{{
				Host: spec.Host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path:     "/",
						PathType: ptr.To(networkingv1.PathTypePrefix),
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: ragServerName(ra), Port: networkingv1.ServiceBackendPort{Name: "http"},
						}},
					}},
				}},
			}},
		},
	}
	if len(spec.Annotations) > 0 {
		ing.Annotations = map[string]string{}
		for _, k := range sortedKeys(spec.Annotations) {
			ing.Annotations[k] = spec.Annotations[k]
		}
	}
	if spec.TLSSecretName != "" {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{spec.Host}, SecretName: spec.TLSSecretName}}
	}
	return ing
}

// ragServerHTTPRoute attaches the RAG server's Service to the declared Gateways (nil when none).
func ragServerHTTPRoute(ra *ragv1.RagAppliance) *gatewayv1.HTTPRoute {
	spec := ra.Spec.RagServer.GatewayRoute
	if spec == nil {
		return nil
	}
	route := &gatewayv1.HTTPRoute{
		TypeMeta:   typeMeta(gatewayv1.GroupVersion.String(), "HTTPRoute"),
		ObjectMeta: objectMeta(ra, ragServerName(ra), componentRagServer),
		Spec: gatewayv1.HTTPRouteSpec{
			Rules: []gatewayv1.HTTPRouteRule{{
				Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{
					Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/"),
				}}},
				BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
					Name: gatewayv1.ObjectName(ragServerName(ra)), Port: ptr.To(gatewayv1.PortNumber(ragServerPort)),
				}}}},
			}},
		},
	}
	for _, p := range spec.ParentRefs {
		ref := gatewayv1.ParentReference{Name: gatewayv1.ObjectName(p.Name)}
		if p.Namespace != "" {
			ref.Namespace = ptr.To(gatewayv1.Namespace(p.Namespace))
		}
		if p.SectionName != "" {
			ref.SectionName = ptr.To(gatewayv1.SectionName(p.SectionName))
		}
		route.Spec.ParentRefs = append(route.Spec.ParentRefs, ref)
	}
	for _, h := range spec.Hostnames {
		route.Spec.Hostnames = append(route.Spec.Hostnames, gatewayv1.Hostname(h))
	}
	return route
}

// reconcileExposure applies the declared Ingress and HTTPRoute and removes ones no longer
// declared. The HTTPRoute goes through unstructured objects read uncached: the operator does
// not watch Gateway API kinds, which a cluster may not have installed.
func (r *RagApplianceReconciler) reconcileExposure(ctx context.Context, s *scope) error {
	ra := s.ra
	var errs []error
	if ing := ragServerIngress(ra); ing != nil {
		errs = append(errs, r.applyAll(ctx, s, ragv1.ConditionRagServerReady, ing))
	} else {
		live := &networkingv1.Ingress{}
		err := r.Get(ctx, client.ObjectKey{Namespace: ra.Namespace, Name: ragServerName(ra)}, live)
		if err == nil && metav1.IsControlledBy(live, ra) {
			errs = append(errs, client.IgnoreNotFound(r.Delete(ctx, live)))
		}
	}
	gvk := gatewayv1.SchemeGroupVersion.WithKind("HTTPRoute")
	if route := ragServerHTTPRoute(ra); route != nil {
		raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(route)
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{Object: raw}
		if err := r.applier.apply(ctx, u); err != nil {
			if meta.IsNoMatchError(err) || strings.Contains(err.Error(), "no matches for kind") {
				err = fmt.Errorf("spec.ragServer.gatewayRoute: the Gateway API (HTTPRoute, %s) is not installed in this cluster", gvk.GroupVersion())
			}
			setCondition(ra, ragv1.ConditionRagServerReady, falseState(ragv1.ReasonApplyFailed, err.Error()))
			errs = append(errs, err)
		}
		r.routes.Store(client.ObjectKeyFromObject(ra), true)
	} else if _, had := r.routes.Load(client.ObjectKeyFromObject(ra)); had && r.APIReader != nil {
		// Only a route this manager applied is looked for: a cluster without the Gateway API
		// would otherwise cost a discovery miss on every pass.
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(gvk)
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ra.Namespace, Name: ragServerName(ra)}, live)
		if err == nil && metav1.IsControlledBy(live, ra) {
			err = client.IgnoreNotFound(r.Delete(ctx, live))
			errs = append(errs, err)
		}
		if err == nil || apierrors.IsNotFound(err) {
			r.routes.Delete(client.ObjectKeyFromObject(ra))
		}
	}
	return errors.Join(errs...)
}
