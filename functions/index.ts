/**
 * The Functions entry (`package.json#main` is its bundle). Azure's host and the local host both
 * load exactly this list of registrations.
 */
import './snapshot.ts';
import './scale-requests.ts';
import './tracker.ts';
import './callbacks.ts';
import './http.ts';
