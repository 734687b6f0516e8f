import "uplot/dist/uPlot.min.css";
import "./console.css";
import { route, start } from "./app";
import { chartsPage } from "./pages/charts";
import { consumerPage, consumersPage } from "./pages/consumers";
import { deadLettersPage } from "./pages/deadletters";
import { devicePage } from "./pages/device";
import { devicesPage } from "./pages/devices";
import { signInPage } from "./pages/signin";
import { usersPage } from "./pages/users";

route("/signin", "Sign in", signInPage, { public: true });
route("/devices", "Devices", devicesPage);
route("/devices/:id", "Device", devicePage);
route("/consumers", "Consumers", consumersPage);
route("/consumers/:id", "Consumer", consumerPage);
route("/charts", "Charts", chartsPage);
route("/deadletters", "Dead letters", deadLettersPage);
route("/users", "Users", usersPage, { admin: true });

start();
