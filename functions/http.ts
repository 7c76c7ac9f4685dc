import { app } from '@azure/functions';
import { ROUTES } from '../src/http/routes.ts';
import { services } from '../src/app/services.ts';
import { httpTrigger } from '../src/app/triggers.ts';

// Every HTTP route of docs/api.md §4, from the same table that generates the OpenAPI document.
for (const route of ROUTES) {
  app.http(route.name, {
    methods: route.methods,
    route: route.route,
    authLevel: route.authLevel,
    handler: httpTrigger(route.handler, services),
  });
}
